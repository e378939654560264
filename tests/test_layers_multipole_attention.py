"""Behaviour of the attention layers: shapes, levels, receptive field, exactness of padding, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mano_pde.layers import (
    GlobalAttention,
    MultipoleAttention,
    WindowAttention,
    WindowedMultiheadAttention,
    multipole_level_shapes,
)

C = 8  # channels used throughout: small and fast


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _layer(**kw) -> MultipoleAttention:
    kw.setdefault("n_heads", 2)
    kw.setdefault("window_size", 8)
    return MultipoleAttention(C, **kw)


@pytest.mark.parametrize("shape", [(16, 16), (33, 33), (64, 64), (85, 85), (128, 128), (64, 96)])
def test_output_shape_any_grid(shape):
    layer = _layer()
    x = torch.randn(2, C, *shape)
    y = layer(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert y.is_contiguous()


def test_out_channels_differ():
    layer = MultipoleAttention(C, 12, n_heads=2, window_size=4)
    assert layer(torch.randn(1, C, 21, 10)).shape == (1, 12, 21, 10)


@pytest.mark.parametrize(
    "options",
    [
        dict(downsample="avg"),
        dict(upsample="nearest"),
        dict(upsample="bilinear"),
        dict(factor=3, window_size=4),
        dict(head_dim=5, n_heads=3),
        dict(dropout=0.1),
    ],
)
def test_options(options):
    layer = _layer(**options)
    x = torch.randn(2, C, 45, 30)
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_gradients_reach_every_parameter():
    layer = _layer(window_size=4)
    x = torch.randn(2, C, 33, 20, requires_grad=True)
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_level_count_grows_with_input_and_is_decided_at_call_time():
    layer = _layer(window_size=8)
    assert [layer.num_levels(n, n) for n in (8, 16, 32, 64, 128, 256)] == [1, 2, 3, 4, 5, 6]
    assert multipole_level_shapes(64, 96, 8, 2) == [(64, 96), (32, 48), (16, 24), (8, 12), (4, 6)]
    assert multipole_level_shapes(85, 85, 8, 2)[-1] == (6, 6)

    calls = []
    attend = layer.attention._attend

    def spy(x, *args, **kwargs):  # every level's attention goes through _attend
        calls.append(tuple(x.shape[1:3]))
        return attend(x, *args, **kwargs)

    layer.attention._attend = spy
    for n in (16, 64, 256):  # the same weights at growing resolution: more levels
        calls.clear()
        layer(torch.randn(1, C, n, n))
        assert len(calls) == layer.num_levels(n, n)
        assert max(calls[0]) <= 8  # the coarsest level (evaluated first) fits in one window


@pytest.mark.parametrize("shape", [(64, 64), (85, 85), (40, 96)])
def test_receptive_field_is_global_after_one_layer(shape):
    layer = _layer(window_size=8).eval()
    x = torch.randn(1, C, *shape)
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0  # perturb one corner pixel
    with torch.no_grad():
        d = (layer(x2) - layer(x)).abs()
    assert d[:, :, -1, -1].max() > 1e-6  # the opposite corner sees it

    # contrast: plain window attention is local, the opposite corner does not see the change
    local = WindowAttention(C, n_heads=2, window_size=8).eval()
    with torch.no_grad():
        d_local = (local(x2) - local(x)).abs()
    assert d_local[:, :, -1, -1].max() == 0


def _reference_attention(
    attn: WindowedMultiheadAttention, tokens: torch.Tensor, coords: torch.Tensor | None = None, extent=None
) -> torch.Tensor:
    """Textbook softmax(Q K^T / sqrt(d) + bias) V over a token set ``[B, N, C]``, with the module's weights.

    With a position bias, ``coords`` ``[N, 2]`` are the tokens' grid indices and the bias of a pair is the
    module's MLP of their displacement divided by ``extent``.
    """
    b, n, _ = tokens.shape
    q, k, v = attn.qkv(tokens).chunk(3, dim=-1)
    q, k, v = (t.view(b, n, attn.n_heads, attn.head_dim).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
    if attn.position_bias is not None:
        disp = (coords[:, None, :] - coords[None, :, :]).float() / torch.tensor(extent, dtype=torch.float32)
        logits = logits + attn.position_bias(disp).permute(2, 0, 1)
    a = torch.softmax(logits, dim=-1)
    o = (a @ v).transpose(1, 2).reshape(b, n, attn.inner_channels)
    return attn.proj(o)


@pytest.mark.parametrize("shape", [(8, 8), (6, 7), (1, 5)])
def test_single_level_equals_plain_attention(shape):
    layer = _layer(window_size=8).eval()
    assert layer.num_levels(*shape) == 1
    x = torch.randn(2, C, *shape)
    with torch.no_grad():
        y = layer(x)
        tokens = x.permute(0, 2, 3, 1).reshape(2, -1, C)
        ref = _reference_attention(layer.attention, tokens).view(2, *shape, C).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)

    glob = GlobalAttention(C, n_heads=2).eval()
    glob.attention.load_state_dict(layer.attention.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(glob(x), ref, rtol=1e-5, atol=1e-5)


def _randomise_position_bias(attn: WindowedMultiheadAttention) -> None:
    """The bias MLP starts at zero (plain attention); give it random weights to test it."""
    with torch.no_grad():
        for p in attn.position_bias.parameters():
            p.normal_(0, 1)


@pytest.mark.parametrize("position_bias", [False, True])
@pytest.mark.parametrize("shift", [(0, 0), (2, 3)])
def test_padded_windows_are_exact(shift, position_bias):
    """Padding + key mask == attention restricted to the real tokens of each (shifted) window; with a
    position bias, the bias of a pair depends only on the pair's displacement (divided by the window)."""
    attn = WindowedMultiheadAttention(C, n_heads=2, position_bias=position_bias).eval()
    if position_bias:
        _randomise_position_bias(attn)
    h, w, win = 10, 13, (4, 5)
    x = torch.randn(2, h, w, C)
    with torch.no_grad():
        y = attn(x, window=win, shift=shift)
        expected = torch.empty_like(y)
        # windows start at shift + k * window (and the partial windows before the first start)
        rows = sorted({0, *range(shift[0] % win[0], h, win[0]), h})
        cols = sorted({0, *range(shift[1] % win[1], w, win[1]), w})
        for r0, r1 in zip(rows[:-1], rows[1:], strict=True):
            for c0, c1 in zip(cols[:-1], cols[1:], strict=True):
                block = x[:, r0:r1, c0:c1].reshape(2, -1, C)
                coords = torch.stack(
                    torch.meshgrid(torch.arange(r0, r1), torch.arange(c0, c1), indexing="ij"), dim=-1
                ).reshape(-1, 2)
                ref = _reference_attention(attn, block, coords, win)
                expected[:, r0:r1, c0:c1] = ref.view(2, r1 - r0, c1 - c0, C)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_position_bias_starts_as_plain_attention():
    plain = _layer().eval()
    biased = _layer(position_bias=True).eval()
    missing = biased.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all("position_bias" in k for k in missing)
    x = torch.randn(2, C, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(biased(x), plain(x))
        _randomise_position_bias(biased.attention)
        assert not torch.allclose(biased(x), plain(x))


@pytest.mark.parametrize("shift", [0, 3])
def test_v_cycle_combination_formula(shift):
    """res_l = out_l + up(res_{l+1}) / (l + 1), checked against an explicit three-level evaluation
    (with ``shift``, every level's windows are offset by it)."""
    layer = _layer(window_size=8, shift=shift, downsample="avg", upsample="nearest").eval()
    x = torch.randn(1, C, 32, 32)
    att = layer.attention
    with torch.no_grad():
        xs = [x, F.avg_pool2d(x, 2), F.avg_pool2d(x, 4)]
        outs = [att(t.permute(0, 2, 3, 1), window=(8, 8), shift=(shift, shift)).permute(0, 3, 1, 2) for t in xs]
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        res = outs[2]
        res = outs[1] + up(res) / 2
        res = outs[0] + up(res) / 1
        torch.testing.assert_close(layer(x), res, rtol=1e-5, atol=1e-5)


def test_learned_resampling_starts_as_pooling_and_nearest():
    conv = _layer(window_size=8).eval()
    ref = _layer(window_size=8, downsample="avg", upsample="nearest").eval()
    ref.attention.load_state_dict(conv.attention.state_dict())
    x = torch.randn(1, C, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), ref(x), rtol=1e-5, atol=1e-5)


def test_non_divisible_grid_keeps_constant_field_constant_on_coarse_levels():
    layer = _layer(window_size=4)
    x = torch.full((1, 7, 7, C), 3.0)
    coarse = layer._down(x)
    assert coarse.shape == (1, 4, 4, C)
    torch.testing.assert_close(coarse, torch.full_like(coarse, 3.0))


@pytest.mark.parametrize("layer_cls", [MultipoleAttention, WindowAttention, GlobalAttention], ids=lambda c: c.__name__)
def test_bad_input_gives_clear_errors(layer_cls):
    layer = layer_cls(C, n_heads=2)
    with pytest.raises(ValueError, match=r"4-D input \[B, C, H, W\].*unsqueeze"):
        layer(torch.randn(C, 16, 16))
    with pytest.raises(ValueError, match=rf"C = {C} channels, got shape \(2, 3, 16, 16\)"):
        layer(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="channels-last"):
        layer(torch.randn(2, 16, 16, C))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(2, C, 16, 16, dtype=torch.long))


def test_bad_construction_gives_clear_errors():
    with pytest.raises(ValueError, match="factor"):
        MultipoleAttention(C, factor=1)
    with pytest.raises(ValueError, match="downsample"):
        MultipoleAttention(C, downsample="max")
    with pytest.raises(ValueError, match="upsample"):
        MultipoleAttention(C, upsample="cubic")
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        MultipoleAttention(C, n_heads=3)
    with pytest.raises(TypeError, match="windw_size"):
        MultipoleAttention(C, windw_size=4)
    with pytest.raises(NotImplementedError, match="real-valued"):
        MultipoleAttention(C, complex_data=True)
    with pytest.raises(ValueError, match="shift"):
        WindowAttention(C, window_size=4, shift=4)
    with pytest.raises(ValueError, match="shift"):
        MultipoleAttention(C, window_size=4, shift=-1)


def test_output_shape_and_scaling_resample():
    layer = MultipoleAttention(C, n_heads=2, resolution_scaling_factor=2)
    x = torch.randn(1, C, 12, 10)
    assert layer(x).shape == (1, C, 24, 20)
    assert layer.transform(x).shape == (1, C, 24, 20)
    assert layer(x, output_shape=(7, 9)).shape == (1, C, 7, 9)
    layer.n_modes = (4, 4)  # settable, as FNOBlocks requires
    assert layer.n_modes == [4, 4]


# -- reference-grid mode ------------------------------------------------------------------------------


def _smooth_field(n: int) -> torch.Tensor:
    """The same smooth C-channel function sampled on an n x n vertex grid of the unit square."""
    t = torch.linspace(0, 1, n)
    gx, gy = torch.meshgrid(t, t, indexing="ij")
    chans = [
        torch.sin(math.pi * (k + 1) * gx) * torch.cos(math.pi * (k % 3) * gy) + 0.3 * k * gx * gy for k in range(C)
    ]
    return torch.stack(chans)[None]


@pytest.mark.parametrize("shape", [(33, 33), (17, 17), (9, 13)])
def test_reference_grid_mode_is_the_paper_layer_on_and_below_the_reference(shape):
    layer = _layer(window_size=4).eval()
    x = torch.randn(2, C, *shape)
    with torch.no_grad():
        paper = layer(x)
        layer.set_reference_grid((33, 33))
        torch.testing.assert_close(layer(x), paper, rtol=0, atol=0)


def test_reference_grid_mode_formula():
    """Near field with physically sized windows on the fine grid + far field computed at the reference grid."""
    layer = _layer(window_size=8, downsample="avg", upsample="nearest", reference_grid=16).eval()
    x = torch.randn(1, C, 31, 31)
    att = layer.attention
    cl = lambda t: t.permute(0, 2, 3, 1)  # noqa: E731
    with torch.no_grad():
        x_ref = F.adaptive_avg_pool2d(x, (16, 16))
        far = att(cl(F.avg_pool2d(x_ref, 2)), window=(8, 8)).permute(0, 3, 1, 2)  # level 1 (8 x 8): one window
        far = F.interpolate(far, scale_factor=2, mode="nearest")  # up to the 16 x 16 reference grid
        far = F.interpolate(far, size=(31, 31), mode="bilinear", align_corners=True)
        near = att(cl(x), window=(16, 16)).permute(0, 3, 1, 2)  # window 8 * (31 - 1) / (16 - 1) = 16
        torch.testing.assert_close(layer(x), near + far, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("position_bias,shift", [(False, 0), (True, 0), (True, 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_grid_mode_is_consistent_across_discretisations(seed, position_bias, shift):
    """One smooth function at 17² and at 65²: with the reference grid set, the 65² output at the shared nodes
    stays close to the 17² output; the paper's layer (fixed windows in grid points) does not."""
    torch.manual_seed(seed)
    layer = _layer(window_size=4, shift=shift, position_bias=position_bias).eval()
    if position_bias:  # displacements are measured in windows, i.e. in physical units in reference-grid mode
        _randomise_position_bias(layer.attention)
    with torch.no_grad():
        coarse = layer(_smooth_field(17))
        paper = layer(_smooth_field(65))[..., ::4, ::4]
        layer.set_reference_grid(17)
        anchored = layer(_smooth_field(65))[..., ::4, ::4]
    err_paper = ((paper - coarse).norm() / coarse.norm()).item()
    err_anchored = ((anchored - coarse).norm() / coarse.norm()).item()
    assert err_anchored < 0.1
    assert err_anchored < err_paper / 4


@pytest.mark.parametrize("bad", [1, (33,), (33, 1), "33", (32.5, 32), True])
def test_bad_reference_grid_is_refused(bad):
    with pytest.raises(ValueError, match="reference_grid"):
        _layer(reference_grid=bad)


def test_reference_window():
    from mano_pde.layers.multipole_attention import reference_window

    assert [reference_window(8, s, 33) for s in (33, 65, 129, 20)] == [8, 16, 32, 8]
    assert reference_window(8, 421, 85) == 40
