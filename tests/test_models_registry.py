"""The model registry, the transformer-operator skeleton, FNO presets and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from neuralop.models import FNO, TFNO

from mano_pde.models import (
    FNO_PAPER_N_MODES,
    MANO,
    GlobalAttentionOperator,
    TransformerOperator,
    WindowAttentionOperator,
    count_parameters,
    create_model,
    fno_darcy,
    list_models,
    load_model,
    save_model,
)

NAMES = ["mano", "fno", "tfno", "global-attention", "window-attention"]
TINY = {
    "mano": dict(hidden_channels=8, n_layers=2, n_heads=2, window_size=4),
    "global-attention": dict(hidden_channels=8, n_layers=2, n_heads=2),
    "window-attention": dict(hidden_channels=8, n_layers=2, n_heads=2, window_size=4),
    "fno": dict(hidden_channels=8, n_layers=2, n_modes=(8, 8)),
    "tfno": dict(hidden_channels=8, n_layers=2, n_modes=(8, 8)),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_list_models_has_the_cli_names():
    assert set(NAMES) <= set(list_models())


@pytest.mark.parametrize("name", NAMES)
def test_create_model_forward_and_uniform_keywords(name):
    model = create_model(
        name, in_channels=2, out_channels=3, positional_embedding=None, non_linearity="relu", **TINY[name]
    )
    x = torch.randn(2, 2, 20, 28)
    y = model(x)
    assert y.shape == (2, 3, 20, 28)
    assert torch.isfinite(y).all()
    assert model.mano_pde_config["model"] == name


def test_registry_returns_neuralop_classes_and_skeleton_subclasses():
    assert type(create_model("fno")) is FNO
    assert type(create_model("tfno")) is TFNO
    for name, cls, mixer in [
        ("mano", MANO, "multipole"),
        ("global-attention", GlobalAttentionOperator, "global"),
        ("window-attention", WindowAttentionOperator, "window"),
    ]:
        model = create_model(name, **TINY[name])
        assert type(model) is cls and isinstance(model, TransformerOperator)
        assert model.mixer == mixer


def test_registry_errors_are_clear():
    with pytest.raises(ValueError, match="available models"):
        create_model("unet")
    with pytest.raises(TypeError, match="windw_size"):
        create_model("mano", windw_size=4)
    with pytest.raises(TypeError, match="not_an_fno_arg"):
        create_model("fno", not_an_fno_arg=1)
    with pytest.raises(ValueError, match="always uses the 'multipole' mixer"):
        MANO(1, 1, mixer="global")
    with pytest.raises(ValueError, match="non_linearity"):
        MANO(1, 1, non_linearity="swishy")
    assert create_model("Global_Attention", **TINY["global-attention"]).mixer == "global"


def test_mano_shifts_windows_only_when_asked():
    paper = create_model("mano", in_channels=1, out_channels=1, hidden_channels=8, n_layers=4, window_size=4)
    assert [b.mixer.shift for b in paper.blocks] == [0, 0, 0, 0]
    shifted = create_model("mano", **{**TINY["mano"], "n_layers": 4, "window_size": 4, "shift_multipole": True})
    assert [b.mixer.shift for b in shifted.blocks] == [0, 2, 0, 2]


def test_window_operator_alternates_shifted_windows():
    model = create_model("window-attention", hidden_channels=8, n_layers=4, n_heads=2, window_size=8)
    assert [b.mixer.shift for b in model.blocks] == [0, 4, 0, 4]


def test_fno_preset_matches_paper_modes_and_parameter_count():
    model = fno_darcy()
    assert model.n_modes == FNO_PAPER_N_MODES == (24, 22)
    weight = model.fno_blocks.convs[0].weight
    # paper: two (32, 32, 12, 12) complex blocks (rows 0..11 and -12..-1, columns 0..11)
    assert tuple(weight.shape) == (32, 32, 24, 12)
    fourier = sum(2 * c.weight.numel() for c in model.fno_blocks.convs)
    assert fourier == 4 * 2 * 2 * 32 * 32 * 12 * 12  # layers x blocks x (re, im) x width^2 x modes^2
    assert count_parameters(model) > fourier
    assert model.hidden_channels == 32 and model.n_layers == 4


def test_mano_gradients_reach_every_parameter():
    model = create_model("mano", **TINY["mano"])
    x = torch.randn(2, 1, 17, 23)
    model(x).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_mano_runs_at_any_resolution_with_the_same_weights():
    model = create_model("mano", **TINY["mano"]).eval()
    with torch.no_grad():
        for n in (8, 16, 33, 64):
            assert model(torch.randn(1, 1, n, n)).shape == (1, 1, n, n)
    assert model.num_levels(8, 8) < model.num_levels(64, 64)


def test_model_output_shape_resamples_before_projection():
    model = create_model("mano", **TINY["mano"])
    x = torch.randn(1, 1, 16, 16)
    assert model(x, output_shape=(32, 24)).shape == (1, 1, 32, 24)
    assert model(x, output_shape=[None, (20, 20)]).shape == (1, 1, 20, 20)


@pytest.mark.parametrize("name", ["mano", "global-attention"])
def test_model_bad_input_gives_clear_errors(name):
    model = create_model(name, in_channels=3, **TINY[name])
    with pytest.raises(ValueError, match=r"4-D input \[B, C, H, W\]"):
        model(torch.randn(3, 16, 16))
    with pytest.raises(ValueError, match=r"C = 3 channels, got shape \(2, 1, 16, 16\)"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(TypeError, match=r"torch.float32 weights but got a torch.float64 input"):
        model(torch.randn(2, 3, 16, 16, dtype=torch.float64))


@pytest.mark.parametrize("norm", [None, "group_norm", "instance_norm"])
def test_mano_norm_options(norm):
    model = create_model("mano", norm=norm, dropout=0.1, **TINY["mano"])
    y = model(torch.randn(2, 1, 12, 20))
    assert y.shape == (2, 1, 12, 20) and torch.isfinite(y).all()
    y.sum().backward()


@pytest.mark.parametrize("name", NAMES)
def test_save_model_load_model_round_trip(tmp_path, name):
    model = create_model(name, **TINY[name]).eval()
    save_model(model, tmp_path, "ckpt")
    config = json.loads((tmp_path / "ckpt_config.json").read_text())
    assert config["model"] == name
    # the state dict holds tensors only: loadable under torch's weights_only=True
    state = torch.load(tmp_path / "ckpt_state_dict.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    reloaded = load_model(tmp_path, "ckpt").eval()
    assert type(reloaded) is type(model)
    x = torch.randn(2, 1, 16, 20)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x))


def test_save_model_interrupted_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = create_model("mano", **TINY["mano"]).eval()
    save_model(model, tmp_path, "ckpt")
    before = (tmp_path / "ckpt_state_dict.pt").read_bytes()

    def torn_save(obj, f):
        if hasattr(f, "write"):
            f.write(b"half a checkpoint")
        else:
            with open(f, "wb") as fh:
                fh.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_model(create_model("mano", **TINY["mano"]), tmp_path, "ckpt")
    monkeypatch.undo()
    assert (tmp_path / "ckpt_state_dict.pt").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))  # the torn temporary file is removed
    load_model(tmp_path, "ckpt")  # still loads


def test_mano_reference_grid_is_set_on_every_block_and_saved(tmp_path):
    model = create_model("mano", **TINY["mano"]).eval()
    assert model.reference_grid is None
    model.set_reference_grid(16)
    assert model.reference_grid == (16, 16)
    assert all(block.mixer.reference_grid == (16, 16) for block in model.blocks)
    save_model(model, tmp_path, "ckpt")
    reloaded = load_model(tmp_path, "ckpt").eval()
    assert reloaded.reference_grid == (16, 16)
    x = torch.randn(1, 1, 31, 31)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x))
        model.set_reference_grid(None)
        assert not torch.allclose(model(x), reloaded(x))


@pytest.mark.parametrize("name", ["window-attention", "global-attention"])
def test_reference_grid_is_refused_without_multipole_attention(name):
    model = create_model(name, **TINY[name])
    with pytest.raises(ValueError, match="multipole attention only"):
        model.set_reference_grid(16)


def test_neuralop_checkpoint_of_mano_reloads_under_weights_only(tmp_path):
    model = MANO(1, 1, hidden_channels=8, n_layers=1, n_heads=2).eval()
    model.save_checkpoint(tmp_path, "model")
    # neuralop's own file: its _metadata holds plain data only (non-linearity stored by name)
    state = torch.load(tmp_path / "model_state_dict.pt")  # torch's default: weights_only=True
    assert state["_metadata"]["non_linearity"] == "gelu"
    torch.load(tmp_path / "model_metadata.pkl", weights_only=True)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(MANO.from_checkpoint(tmp_path, "model")(x), model(x))
        torch.testing.assert_close(load_model(tmp_path)(x), model(x))


#: ``model_config.json`` of ``create_model("mano", hidden_channels=8, n_layers=1, n_heads=2, image_size=17)`` with
#: ``set_reference_grid(33)``, as mano_pde wrote it before the models kept their own record (its keywords came from
#: neuraloperator's private ``_init_kwargs``, in that order).
LEGACY_MANO_CONFIG = {
    "format": "mano_pde.model/1",
    "model": "mano",
    "kwargs": {
        **dict(hidden_channels=8, n_layers=1, n_heads=2, image_size=17, in_channels=1, out_channels=1, mixer=None),
        **dict(head_dim=None, window_size=8, window_stride=None, factor=2, downsample="conv", upsample="conv"),
        **dict(level_rule="log", level_norm=True, resample_init="default", qkv_bias=None, shift_windows=True),
        **dict(shift_multipole=False, mlp_ratio=2.0, dropout=0.0, lifting_channel_ratio=None),
        **dict(projection_channel_ratio=None, positional_embedding="node", non_linearity="gelu"),
        **dict(projection_non_linearity=None, norm="layer_norm", reference_grid=[33, 33], position_bias=False),
    },
    "model_version": "0.1.0",
    "mano_pde_version": "0.1.0",
}


def test_models_record_their_own_arguments_as_before_and_legacy_configs_load(tmp_path):
    """The JSON record is the model's own (no neuralop internals) and holds what the previous record held."""
    from mano_pde.models import model_config

    model = create_model("mano", hidden_channels=8, n_layers=1, n_heads=2, image_size=17).eval()
    model.set_reference_grid(33)
    assert model_config(model)["kwargs"] == LEGACY_MANO_CONFIG["kwargs"]
    assert model.init_arguments["reference_grid"] == [33, 33]
    # a checkpoint whose model_config.json the previous code wrote loads (digest of the weights as recorded)
    save_model(model, tmp_path)
    digest = json.loads((tmp_path / "model_config.json").read_text())["state_dict_sha256"]
    legacy = {**LEGACY_MANO_CONFIG, "state_dict_sha256": digest}
    (tmp_path / "model_config.json").write_text(json.dumps(legacy, indent=2) + "\n")
    reloaded = load_model(tmp_path).eval()
    assert reloaded.reference_grid == (33, 33)
    x = torch.randn(1, 1, 65, 65)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x), rtol=0, atol=0)


def test_neuralop_checkpoint_of_a_model_built_with_positional_arguments(tmp_path):
    """neuralop's own record kept positional arguments beside their defaults, so from_checkpoint failed with
    'multiple values for argument'; the model's own record names every argument."""
    model = MANO(1, 1, 8, 1, n_heads=2, window_size=4).eval()
    model.set_reference_grid(16)
    model.save_checkpoint(tmp_path, "model")
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    x = torch.randn(1, 1, 31, 31)
    with torch.no_grad():
        rebuilt = MANO.from_checkpoint(tmp_path, "model").eval()
        assert rebuilt.hidden_channels == 8 and rebuilt.reference_grid == (16, 16)
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
        (tmp_path / "model_config.json").unlink()  # load_model's fallback: neuralop's metadata, plain data only
        torch.testing.assert_close(load_model(tmp_path).eval()(x), model(x), rtol=0, atol=0)


def test_neuralop_checkpoint_of_fno_needs_trust(tmp_path):
    """neuralop's FNO pickles F.gelu / SpectralConv (issue #558): refused unless trusted."""
    model = create_model("fno", **TINY["fno"]).eval()
    model.save_checkpoint(tmp_path, "model")  # neuralop's method: no JSON config
    with pytest.raises(ValueError, match="trust_pickle=True"):
        load_model(tmp_path)
    reloaded = load_model(tmp_path, trust_pickle=True).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x))


def test_load_model_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_state_dict.pt"):
        load_model(tmp_path)


@pytest.mark.parametrize("n_layers,dropout", [(1, 0.0), (2, 0.0), (3, 0.5)])
def test_channels_last_channel_mlp_equals_neuralop_forward(n_layers, dropout):
    from neuralop.layers.channel_mlp import ChannelMLP

    from mano_pde.models.transformer_operator import channel_mlp_channels_last

    mlp = ChannelMLP(in_channels=3, out_channels=5, hidden_channels=7, n_layers=n_layers, dropout=dropout).eval()
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        expected = mlp(x)
        got = channel_mlp_channels_last(mlp, x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
