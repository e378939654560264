"""softmax_attention: the explicit bf16 CPU training kernel computes the same attention as SDPA."""

import pytest
import torch
import torch.nn.functional as F

from mano_pde.layers.attention import softmax_attention


def _inputs(dtype, requires_grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(6, 2, 16, 8, generator=g) for _ in range(3))
    return [t.to(dtype).requires_grad_(requires_grad) for t in (q, k, v)]


def _mask(kind):
    if kind == "bool":
        m = torch.ones(6, 1, 1, 16, dtype=torch.bool)
        m[::2, ..., 11:] = False  # padded keys of every other window
        return m
    if kind == "float":
        return torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(1))  # a position bias
    return None


@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("scale", [None, 0.2])
def test_bf16_training_kernel_matches_sdpa_values_and_gradients(mask, scale):
    q, k, v = _inputs(torch.bfloat16)
    out = softmax_attention(q, k, v, attn_mask=_mask(mask), scale=scale)
    assert out.dtype == torch.bfloat16
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    out.float().mul(gout).sum().backward()
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, attn_mask=_mask(mask), scale=scale)
    ref.mul(gout).sum().backward()
    torch.testing.assert_close(out.float(), ref, rtol=0.02, atol=0.02)
    for got, want in ((q.grad, q32.grad), (k.grad, k32.grad), (v.grad, v32.grad)):
        rel = float((got.float() - want).norm() / want.norm())
        assert rel < 0.02


def test_bf16_training_kernel_padding_mask_gives_padded_keys_zero_weight():
    q, k, v = _inputs(torch.bfloat16)
    mask = _mask("bool")
    v2 = v.detach().clone()
    v2[::2, :, 11:] = 1e3  # values of masked keys must not matter
    a = softmax_attention(q, k, v, attn_mask=mask)
    b = softmax_attention(q, k, v2.requires_grad_(), attn_mask=mask)
    assert torch.equal(a, b) and torch.isfinite(a).all()


def test_fp32_is_sdpa():
    """fp32 (the authors' layer as checked against the loop reference): exactly torch's SDPA, with and without
    gradients."""
    q, k, v = _inputs(torch.float32)
    assert torch.equal(softmax_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    with torch.no_grad():
        mask = _mask("bool")
        assert torch.equal(softmax_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, mask))


def test_learned_float_mask_runs_explicitly_and_matches_sdpa():
    """A float mask that needs a gradient (the position bias in training) skips SDPA's math path: same values and
    gradients (the mask's included) as SDPA, to fp32 rounding."""
    results = []
    for use_sdpa in (False, True):
        torch.manual_seed(0)
        q, k, v = _inputs(torch.float32)
        bias = torch.randn(1, q.shape[1], q.shape[2], k.shape[2], requires_grad=True)
        fn = F.scaled_dot_product_attention if use_sdpa else softmax_attention
        out = fn(q, k, v, attn_mask=bias)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        results.append([out.detach(), q.grad, k.grad, v.grad, bias.grad])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bf16_inference_kernel_matches_sdpa():
    q, k, v = _inputs(torch.bfloat16, requires_grad=False)
    with torch.no_grad():
        out = softmax_attention(q, k, v, attn_mask=_mask("bool"))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=_mask("bool"))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.02, atol=0.02)


def test_long_bf16_sequences_keep_the_flash_kernel(monkeypatch):
    """Global attention on a fine grid: the explicit form would hold L x L scores per head; SDPA is used."""
    import mano_pde.layers.attention as attention

    monkeypatch.setattr(attention, "EXPLICIT_MAX_TOKENS", 15)  # the 16-token inputs count as long
    q, k, v = _inputs(torch.bfloat16, requires_grad=False)
    with torch.no_grad():
        assert torch.equal(softmax_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
