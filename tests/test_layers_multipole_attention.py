"""Behaviour of the attention layers: shapes, levels, receptive field, exactness of padding, errors, and the
multipole layer against an independent loop implementation of the MANO authors' layer."""

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
from mano_pde.layers.multipole_attention import log_levels

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


def test_level_rules():
    """The authors' floor(log_r N) levels (fixed by image_size, else per input) and our 'fits one window' rule."""
    assert [log_levels(n, 2) for n in (1, 2, 3, 8, 33, 64, 127, 128)] == [1, 1, 1, 3, 5, 6, 6, 7]
    assert [log_levels(n, 4) for n in (15, 16, 64)] == [1, 2, 3]
    authors = _layer(window_size=8)
    assert [authors.num_levels(n, n) for n in (8, 33, 64, 129)] == [3, 5, 6, 7]
    assert authors.num_levels(40, 96) == 5  # N = min(H, W)
    fixed = _layer(window_size=8, image_size=33)
    assert [fixed.num_levels(n, n) for n in (33, 65, 129)] == [5, 5, 5]
    assert fixed.level_shapes(129, 129) == [(129, 129), (65, 65), (33, 33), (17, 17), (9, 9)]
    ours = _layer(window_size=8, level_rule="window")
    assert [ours.num_levels(n, n) for n in (8, 16, 32, 64, 128, 256)] == [1, 2, 3, 4, 5, 6]
    assert multipole_level_shapes(64, 96, 8, 2) == [(64, 96), (32, 48), (16, 24), (8, 12), (4, 6)]
    assert multipole_level_shapes(85, 85, 8, 2)[-1] == (6, 6)

    calls = []
    partition, attend_grids = authors.attention._partition, authors.attention.attend_grids

    def spy(x, *args, **kwargs):  # a level attended on its own is cut into windows once
        calls.append(tuple(x.shape[1:3]))
        return partition(x, *args, **kwargs)

    def spy_grids(grids, *args, **kwargs):  # levels attended together
        calls.extend(tuple(x.shape[1:3]) for x in grids)
        return attend_grids(grids, *args, **kwargs)

    authors.attention._partition = spy
    authors.attention.attend_grids = spy_grids
    for batch_max_points in (2**62, 0):  # all levels in one call / every level on its own
        authors.batch_max_points = batch_max_points
        for n in (16, 33, 64):
            calls.clear()
            authors(torch.randn(1, C, n, n))
            assert sorted(calls) == sorted(authors.level_shapes(n, n))


@pytest.mark.parametrize("shape", [(64, 64), (85, 85), (40, 96)])
def test_receptive_field_is_global_after_one_layer(shape):
    layer = _layer(window_size=8).double().eval()  # float64: the far field's share is small at init
    x = torch.randn(1, C, *shape, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0  # perturb one corner pixel
    with torch.no_grad():
        d = (layer(x2) - layer(x)).abs()
    assert d[:, :, -1, -1].max() > 1e-12  # the opposite corner sees it
    x, x2 = x.float(), x2.float()

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
    layer = _layer(window_size=8, level_rule="window", level_norm=False).eval()
    assert layer.num_levels(*shape) == 1
    x = torch.randn(2, C, *shape)
    with torch.no_grad():
        y = layer(x)
        tokens = x.permute(0, 2, 3, 1).reshape(2, -1, C)
        ref = _reference_attention(layer.attention, tokens).view(2, *shape, C).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)

    glob = GlobalAttention(C, n_heads=2, qkv_bias=False).eval()
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


def _loop_local_attention(layer: MultipoleAttention, x: torch.Tensor) -> torch.Tensor:
    """The authors' LocalAttention2D written out: k x k windows every s points (capped at the grid; windows
    cut by the grid edge keep their real points only), LayerNorm of the window tokens, the attention's own
    LayerNorm, softmax attention, and the mean over the windows holding each point."""
    b, c, h, w = x.shape
    k, s = layer.window_size, layer.window_stride
    kh, kw = min(k, h), min(k, w)
    sh, sw = (s if h > k else kh), (s if w > k else kw)
    total = torch.zeros(b, layer.out_channels, h, w)
    count = torch.zeros(1, 1, h, w)
    r0 = 0
    while True:
        c0 = 0
        while True:
            rows, cols = slice(r0, min(r0 + kh, h)), slice(c0, min(c0 + kw, w))
            block = x[:, :, rows, cols]
            n_r, n_c = block.shape[2], block.shape[3]
            tokens = block.permute(0, 2, 3, 1).reshape(b, n_r * n_c, c)
            if layer.level_norm:
                tokens = F.layer_norm(tokens, (c,), layer.norm.weight, layer.norm.bias)
                tokens = F.layer_norm(tokens, (c,), layer.attention_norm.weight, layer.attention_norm.bias)
            out = _reference_attention(layer.attention, tokens).view(b, n_r, n_c, -1).permute(0, 3, 1, 2)
            total[:, :, rows, cols] += out
            count[:, :, rows, cols] += 1
            if c0 + kw >= w:
                break
            c0 += sw
        if r0 + kh >= h:
            break
        r0 += sh
    return total / count


def _loop_multipole(layer: MultipoleAttention, x: torch.Tensor) -> torch.Tensor:
    """The authors' Multipole_Attention2D written out level by level, from the issue's description."""
    r = layer.factor
    size = min(layer.image_size) if layer.image_size is not None else min(x.shape[2:])
    n_levels = 0
    while r ** (n_levels + 1) <= size:  # floor(log_r N)
        n_levels += 1
    n_levels = max(n_levels, 1)
    inputs = [x]
    for _ in range(n_levels - 1):
        prev = inputs[-1]
        ph, pw = (-prev.shape[2]) % r, (-prev.shape[3]) % r
        prev = F.pad(prev, (0, pw, 0, ph), mode="replicate")
        inputs.append(F.conv2d(prev, layer.down.weight, stride=r))
    outs = [_loop_local_attention(layer, t) for t in inputs]
    res = outs[-1]
    for i, level in enumerate(range(n_levels - 2, -1, -1)):
        h, w = outs[level].shape[2:]
        up = F.conv_transpose2d(res, layer.up.weight, stride=r)[:, :, :h, :w]
        res = outs[level] + (1.0 / (i + 1)) * up
    return res


@pytest.mark.parametrize(
    "shape,window,stride",
    [
        ((32, 32), 8, None),  # square, every level divides
        ((32, 32), 4, 2),  # square, overlapping windows
        ((33, 33), 8, None),  # odd: padded windows and replicate-padded coarsening
        ((17, 17), 4, 3),  # odd, overlapping, windows not covering the grid exactly
        ((20, 28), 8, None),  # non-square
        ((21, 30), 6, 4),  # non-square, odd, overlapping
    ],
)
def test_fast_layer_equals_loop_reference_of_the_authors_layer(shape, window, stride):
    layer = _layer(window_size=window, window_stride=stride).eval()
    with torch.no_grad():  # random affine LayerNorm weights, so both LayerNorms are exercised
        for norm in (layer.norm, layer.attention_norm):
            norm.weight.normal_(1.0, 0.3)
            norm.bias.normal_(0.0, 0.3)
    x = torch.randn(2, C, *shape)
    with torch.no_grad():
        fast = layer(x)
        slow = _loop_multipole(layer, x)
    assert layer.num_levels(*shape) >= 4
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_v_cycle_weights_count_from_the_coarse_end():
    """Four levels: res = o_2 + Up(o_3); res = o_1 + Up(res) / 2; res = o_0 + Up(res) / 3 (identity attention
    is not available, so the weights are read off a layer whose attention output is a known constant)."""
    layer = _layer(window_size=8, downsample="avg", upsample="nearest", level_norm=False).eval()
    assert layer.num_levels(16, 16) == 4  # 16, 8, 4, 2
    with torch.no_grad():  # attention output = proj bias (zero value projection): o_l = b on every level
        layer.attention.qkv.weight.zero_()
        layer.attention.proj.weight.zero_()
        layer.attention.proj.bias.fill_(1.0)
        y = layer(torch.randn(1, C, 16, 16))
    # o = 1 everywhere: res = 1 + 1 = 2; res = 1 + 2 / 2 = 2; res = 1 + 2 / 3
    torch.testing.assert_close(y, torch.full_like(y, 1.0 + 2.0 / 3.0))


def test_average_resampling_init_starts_as_pooling_and_nearest():
    conv = _layer(window_size=8, resample_init="average").eval()
    ref = _layer(window_size=8, downsample="avg", upsample="nearest").eval()
    ref.load_state_dict({k: v for k, v in conv.state_dict().items() if not k.startswith(("down", "up"))})
    x = torch.randn(1, C, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), ref(x), rtol=1e-5, atol=1e-5)


def test_non_divisible_grid_keeps_constant_field_constant_on_coarse_levels():
    layer = _layer(window_size=4, downsample="avg")
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
    """Near field with physically sized windows on the fine grid + far field of the node-injected input at the
    reference grid, weighted 1 / (L - 1) from the coarse end and interpolated back through the nodes."""
    layer = _layer(window_size=4, downsample="avg", upsample="nearest", reference_grid=16).eval()
    assert layer.num_levels(16, 16) == 4  # 16, 8, 4, 2
    x = torch.randn(1, C, 31, 31)  # (31 - 1) / (16 - 1) = 2: node injection x[::2, ::2]
    cl = lambda t: t.permute(0, 2, 3, 1)  # noqa: E731
    cf = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    with torch.no_grad():
        a = lambda t, win=(4, 4): cf(layer.attention(layer.attention_norm(layer.norm(cl(t))), window=win))  # noqa: E731
        x_ref = x[..., ::2, ::2]
        x1 = F.avg_pool2d(x_ref, 2)
        x2, x3 = F.avg_pool2d(x1, 2), F.avg_pool2d(x1, 4)
        far = a(x2) + up(a(x3)) / 1
        far = a(x1) + up(far) / 2
        far = F.interpolate(up(far) / 3, size=(31, 31), mode="bilinear", align_corners=True)
        near = a(x, (8, 8))  # window 4 * (31 - 1) / (16 - 1) = 8
        torch.testing.assert_close(layer(x), near + far, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fine,coarse", [((129, 129), (33, 33)), ((65, 97), (33, 49))])
def test_reference_grid_far_field_receives_the_training_grid_levels(fine, coarse, monkeypatch):
    """A node-aligned fine input whose node subsample is a training-grid input: the far field of the first
    MANO layer is fed exactly the level inputs that training saw (node embedding + pointwise lifting keep
    the subsample; the far field restricts by node injection)."""
    from mano_pde.models import MANO

    model = MANO(in_channels=1, out_channels=1, hidden_channels=C, n_layers=1, n_heads=2, image_size=coarse).eval()
    mixer = model.blocks[0].mixer
    seen = []
    levels = mixer._levels

    def spy(x, n):
        out = levels(x, n)
        seen.append(list(out))  # a copy: the V-cycle pops the levels as it uses them
        return out

    monkeypatch.setattr(mixer, "_levels", spy)
    t = (fine[0] - 1) // (coarse[0] - 1), (fine[1] - 1) // (coarse[1] - 1)
    a_fine = torch.rand(1, 1, *fine)
    with torch.no_grad():
        model(a_fine[..., :: t[0], :: t[1]])
        trained = seen.pop()
        model.set_reference_grid(coarse)
        model(a_fine)
        far = seen.pop()
    assert not seen and len(far) == len(trained) == mixer.num_levels(*coarse)
    for level, (got, want) in enumerate(zip(far, trained, strict=True)):
        assert got.shape == want.shape, level
        assert torch.equal(got, want), level


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
    # measured (seeds 0/1, no bias): 0.63/0.84 for the plain layer, 0.12/0.14 in reference-grid mode (0.26
    # with a random position bias)
    assert err_anchored < 0.3
    assert err_anchored < err_paper / 3


@pytest.mark.parametrize("bad", [1, (33,), (33, 1), "33", (32.5, 32), True])
def test_bad_reference_grid_is_refused(bad):
    with pytest.raises(ValueError, match="reference_grid"):
        _layer(reference_grid=bad)


def test_reference_window():
    from mano_pde.layers.multipole_attention import reference_window

    assert [reference_window(8, s, 33) for s in (33, 65, 129, 20)] == [8, 16, 32, 8]
    assert reference_window(8, 421, 85) == 40


@pytest.mark.parametrize(
    "shape,options",
    [
        ((33, 33), dict(window_size=8)),  # odd: padded windows, capped coarse levels (5x5, 3x3 < 8)
        ((20, 28), dict(window_size=8)),  # non-square
        ((21, 30), dict(window_size=6, window_stride=4)),  # non-square, odd, overlapping windows
        ((17, 17), dict(window_size=4, window_stride=3)),  # overlapping, windows not covering the grid
        ((33, 33), dict(window_size=8, factor=4)),  # factor 4
        ((40, 24), dict(window_size=8, shift=3, level_rule="window")),  # our shifted windows and level rule
    ],
)
@pytest.mark.parametrize("position_bias", [False, True])
def test_level_batched_attention_equals_the_per_level_path(shape, options, position_bias):
    """All levels in one attention call (the default) give the per-level path's output and gradients."""
    torch.manual_seed(3)
    layer = _layer(position_bias=position_bias, **options)
    with torch.no_grad():
        for norm in (layer.norm, layer.attention_norm):
            norm.weight.normal_(1.0, 0.3)
            norm.bias.normal_(0.0, 0.3)
    if position_bias:
        _randomise_position_bias(layer.attention)
    assert layer.num_levels(*shape) >= 2
    x = torch.randn(2, C, *shape)
    results = []
    for batch_max_points in (2**62, 0):
        layer.batch_max_points = batch_max_points
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append((y.detach(), xi.grad, {n: p.grad.clone() for n, p in layer.named_parameters()}))
    (y_b, gx_b, gp_b), (y_l, gx_l, gp_l) = results
    torch.testing.assert_close(y_b, y_l, rtol=0, atol=1e-6)
    # gradients are sums over all windows, accumulated in another order: compare relative to their size
    assert gp_b.keys() == gp_l.keys()
    for name, got, want in [("input", gx_b, gx_l)] + [(n, gp_b[n], gp_l[n]) for n in gp_b]:
        assert (got - want).abs().max() <= 1e-5 * max(want.abs().max(), 1.0), name  # bias of the logits: ~0


def test_level_batching_keeps_large_levels_alone_and_reference_mode_batched():
    """Levels above batch_max_points run alone (same values); reference-grid mode batches its far field."""
    torch.manual_seed(0)
    layer = _layer(window_size=4, position_bias=True, image_size=17).eval()
    _randomise_position_bias(layer.attention)
    x = torch.randn(1, C, 33, 33)
    sizes = []
    attend_grids = layer.attention.attend_grids

    def spy(grids, *args, **kwargs):
        sizes.append([tuple(g.shape[1:3]) for g in grids])
        return attend_grids(grids, *args, **kwargs)

    layer.attention.attend_grids = spy
    with torch.no_grad():
        layer.batch_max_points = 17 * 17  # 33x33 alone, the rest together
        y_split = layer(x)
        assert sizes.pop() == [(17, 17), (9, 9), (5, 5)]  # 4 levels (image_size 17)
        layer.batch_max_points = 0
        y_alone = layer(x)
        assert not sizes
        torch.testing.assert_close(y_split, y_alone, rtol=0, atol=1e-6)
        layer.batch_max_points = 2**62
        layer.set_reference_grid(17)  # the far field: levels 1.. of the 17x17 reference grid, in one call
        layer(x)
        assert sizes.pop() == [(9, 9), (5, 5), (3, 3)]
