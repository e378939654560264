"""bf16 autocast on the CPU (mano_pde.acceleration): what runs in which precision."""

import torch

from mano_pde.acceleration import bf16_autocast
from mano_pde.models import create_model

CPU = torch.device("cpu")


def _fno():
    torch.manual_seed(0)
    return create_model("fno", in_channels=1, out_channels=1, hidden_channels=8, n_modes=[8, 8], n_layers=2)


def _mano(image_size=9):
    torch.manual_seed(0)
    return create_model(
        "mano", in_channels=1, out_channels=1, hidden_channels=8, n_layers=1, n_heads=2, window_size=4,
        image_size=image_size,
    )  # fmt: skip


def test_cpu_autocast_runs_the_spectral_convolution_in_fp32():
    """autocast casts torch.fft to fp32 on the CPU: SpectralConv is the fp32 layer applied to its bf16 input."""
    model = _fno().eval()
    conv = model.fno_blocks.convs[0]
    seen = {}
    conv.register_forward_hook(lambda mod, inputs, out: seen.update(x=inputs[0], y=out))
    with torch.no_grad():
        with bf16_autocast(CPU):
            out = model(torch.randn(2, 1, 17, 17))
        assert seen["x"].dtype == torch.bfloat16  # the lifting convolution ran in bf16
        assert seen["y"].dtype == torch.float32  # rfft, mode contraction (complex64) and irfft in fp32
        expected = conv(seen["x"].float())  # outside autocast: plain fp32
    torch.testing.assert_close(seen["y"], expected, rtol=1e-6, atol=1e-6)
    assert out.dtype == torch.bfloat16  # the projection's last convolution


def test_mano_under_bf16_autocast_keeps_fp32_weights_and_gradients():
    model = _mano()
    x = torch.randn(2, 1, 9, 9)
    with torch.no_grad():
        ref = model(x)
    dtypes = []
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)):
            m.register_forward_hook(lambda mod, i, o: dtypes.append((type(mod).__name__, o.dtype)))
    with bf16_autocast(CPU):
        out = model(x)
    assert ("Linear", torch.bfloat16) in dtypes
    assert ("LayerNorm", torch.bfloat16) in dtypes  # fp32 statistics inside the CPU kernel, bf16 output
    rel = float((out.detach().float() - ref).norm() / ref.norm())
    assert 0 < rel < 3e-2  # bf16 did run, and stayed close
    out.float().square().mean().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())


def test_bf16_autocast_disabled_is_plain_fp32():
    model = _mano().eval()
    x = torch.randn(1, 1, 9, 9)
    with torch.no_grad():
        with bf16_autocast(CPU, enabled=False):
            a = model(x)
        b = model(x)
    assert a.dtype == torch.float32 and torch.equal(a, b)
