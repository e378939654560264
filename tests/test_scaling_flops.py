"""The analytic FLOP counts of the scaling benchmark against torch's own flop counter (tiny models)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mano_pde.benchmarks.scaling.flops import main_gemm_shapes, model_flops, multipole_attention_flops
from mano_pde.layers import MultipoleAttention
from mano_pde.models import create_model

TINY = dict(hidden_channels=8, n_heads=2, window_size=4)


def _counted(fn) -> int:
    # the math backend: the flop counter does not count the fused CPU flash-attention kernel
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize(
    ("grid", "options"),
    [
        ((16, 16), {}),  # the authors' layer, 4 levels, the coarse levels smaller than a window
        ((13, 11), {"shift_multipole": True}),  # padded and shifted windows, odd grids, replicate padding
        ((12, 12), {"window_stride": 2, "mlp_ratio": 3.0}),  # overlapping windows
        ((16, 10), {"downsample": "avg", "upsample": "nearest", "level_rule": "window"}),
    ],
)
def test_model_flops_equal_the_flop_counter(grid, options):
    torch.manual_seed(0)
    net = create_model("mano", in_channels=1, out_channels=1, n_layers=2, **TINY, **options)
    x = torch.randn(2, 1, *grid)
    flops = model_flops(net, *grid, batch=2)
    assert flops["forward"] == _counted(lambda: net(x))
    assert flops["train"] == _counted(lambda: net(x).sum().backward())  # forward + backward
    assert flops["forward"] == flops["attention"] + flops["mlp"] + flops["lifting"] + flops["projection"]


def test_layer_flops_and_uncovered_options():
    torch.manual_seed(0)
    layer = MultipoleAttention(8, n_heads=2, window_size=4)
    x = torch.randn(1, 8, 16, 16)
    parts = multipole_attention_flops(layer, 16, 16)
    assert parts["total"] == _counted(lambda: layer(x))
    # levels 16, 8, 4, 2: 16, 4, 1, 1 windows of 16, 16, 16, 4 tokens; C = D = 8
    assert parts["scores"] == 2 * 16 * 16**2 * 8 + 2 * 4 * 16**2 * 8 + 2 * 1 * 16**2 * 8 + 2 * 1 * 4**2 * 8
    biased = MultipoleAttention(8, n_heads=2, window_size=4, position_bias=True)
    with pytest.raises(ValueError, match="position bias"):
        multipole_attention_flops(biased, 16, 16)
    assert model_flops(create_model("fno", in_channels=1, out_channels=1), 16, 16) is None


def test_main_gemm_shapes_are_the_level0_products():
    net = create_model("mano", in_channels=1, out_channels=1, n_layers=1, **TINY)
    shapes = {s["name"]: s for s in main_gemm_shapes(net, 16, 16)}
    assert shapes["Q/K/V projection"]["a"] == [256, 8] and shapes["Q/K/V projection"]["b"] == [8, 24]
    assert shapes["Q K^T per window"]["a"] == [32, 16, 4]  # 16 windows x 2 heads, 16 tokens, 4 channels
    assert shapes["MLP fc1"]["flops"] == 2 * 256 * 8 * 16
    for s in shapes.values():  # the flops match what torch.matmul of these shapes does
        a, b = torch.randn(s["a"]), torch.randn(s["b"])
        assert s["flops"] == _counted(lambda a=a, b=b: torch.matmul(a, b))
