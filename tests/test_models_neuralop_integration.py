"""neuraloperator compatibility: registry, get_model, conv_module inside FNO, losses and Trainer."""

from __future__ import annotations

import functools

import pytest
import torch
from neuralop.layers.fno_block import FNOBlocks
from neuralop.losses import H1Loss, LpLoss
from neuralop.models import FNO, get_model
from neuralop.models.base_model import available_models
from neuralop.training import Trainer
from torch.utils.data import DataLoader, Dataset

import mano_pde.models  # noqa: F401  (registers the models with neuralop)
from mano_pde.layers import GlobalAttention, MultipoleAttention, WindowAttention
from mano_pde.models import MANO, load_model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class _Config(dict):
    """The attribute + item access neuralop's get_model uses on its config objects."""

    __getattr__ = dict.__getitem__


def test_models_are_registered_with_neuralop():
    names = available_models()
    for name in ("mano", "globalattentionoperator", "windowattentionoperator"):
        assert name in names


def test_get_model_builds_mano():
    config = _Config(
        model=dict(model_arch="MANO", data_channels=2, out_channels=1, hidden_channels=8, n_layers=1, n_heads=2)
    )
    model = get_model(config)
    assert isinstance(model, MANO)
    assert model(torch.randn(1, 2, 12, 12)).shape == (1, 1, 12, 12)


@pytest.mark.parametrize("conv", [MultipoleAttention, WindowAttention, GlobalAttention], ids=lambda c: c.__name__)
def test_attention_as_fno_conv_module(conv):
    conv_module = functools.partial(conv, n_heads=2)
    model = FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2, conv_module=conv_module)
    assert all(isinstance(c, conv) for c in model.fno_blocks.convs)
    for shape in [(16, 16), (21, 34)]:
        x = torch.randn(2, 1, *shape)
        y = model(x)
        assert y.shape == (2, 1, *shape)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.n_modes = (4, 4)  # FNO propagates n_modes to every conv_module
    assert model.fno_blocks.convs[0].n_modes == [4, 4]
    # output_shape: forward() and transform() (skip path) must agree on the grid
    assert model(torch.randn(1, 1, 16, 16), output_shape=(24, 20)).shape == (1, 1, 24, 20)


def test_fno_blocks_with_resolution_scaling():
    blocks = FNOBlocks(8, 8, n_modes=(4, 4), n_layers=1, resolution_scaling_factor=2, conv_module=MultipoleAttention)
    assert blocks(torch.randn(1, 8, 10, 12)).shape == (1, 8, 20, 24)


def test_mano_with_neuralop_losses():
    model = MANO(1, 1, hidden_channels=8, n_layers=1, n_heads=2)
    x, y = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    out = model(x)
    l2 = LpLoss(d=2, p=2, reduction="sum")(out, y)
    h1 = H1Loss(d=2, periodic_in_x=False, periodic_in_y=False)(out, y)
    assert l2.ndim == 0 and h1.ndim == 0 and torch.isfinite(l2) and torch.isfinite(h1)
    (l2 + h1).backward()
    assert all(p.grad is not None for p in model.parameters())


class _RandomPairs(Dataset):
    def __init__(self, n: int, res: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 1, res, res, generator=g)
        self.y = torch.tanh(self.x)  # a learnable point-wise target

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


@pytest.mark.filterwarnings("ignore:.*received unexpected keyword arguments:UserWarning")
def test_trainer_short_run_and_checkpoint(tmp_path):
    model = MANO(1, 1, hidden_channels=8, n_layers=1, n_heads=2, window_size=4)
    before = [p.detach().clone() for p in model.parameters()]
    train = DataLoader(_RandomPairs(8, 16), batch_size=4)
    test = {"16": DataLoader(_RandomPairs(4, 16), batch_size=4), "32": DataLoader(_RandomPairs(4, 32), batch_size=4)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    l2 = LpLoss(d=2, p=2, reduction="sum")
    h1 = H1Loss(d=2, periodic_in_x=False, periodic_in_y=False)
    trainer = Trainer(model=model, n_epochs=2, device="cpu", verbose=False)
    metrics = trainer.train(
        train,
        test,
        optimizer,
        scheduler,
        training_loss=l2,
        eval_losses={"l2": l2, "h1": h1},
        save_every=1,
        save_dir=tmp_path,
    )
    assert torch.isfinite(torch.tensor(metrics["train_err"]))
    assert {"16_l2", "32_l2", "16_h1", "32_h1"} <= set(metrics)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # the Trainer's checkpoint reloads without unpickling code (JSON config + weights_only)
    assert (tmp_path / "model_config.json").exists()
    reloaded = load_model(tmp_path).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model.eval()(x))
