"""Attention with a learned additive mask: the written-out training path against SDPA."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmhrformer.layers import attention

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
from launch_count import DeviceOpCounter  # noqa: E402


# Mask shapes the backbone makes: the relative position bias alone (1, heads, N, N), and with the
# padding mask (B*nW, heads, N, N); plus a per-window one with heads broadcast.
@pytest.mark.parametrize('mask_shape', [(1, 2, 9, 9), (6, 2, 9, 9), (6, 1, 9, 9)])
def test_learned_mask_path_matches_sdpa_values_and_gradients(mask_shape):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 6, 2, 9, 4).unbind(0)
    mask = torch.randn(mask_shape)
    mask[..., -2:] = float('-inf')  # padded keys, never a whole row
    inputs = [t.clone().requires_grad_() for t in (q, k, v, mask)]
    reference = [t.clone().requires_grad_() for t in (q, k, v, mask)]
    out = attention(*inputs)
    expected = F.scaled_dot_product_attention(*reference[:3], attn_mask=reference[3])
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    for name, a, b in zip('qkv', inputs, reference):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    finite = torch.isfinite(mask)
    torch.testing.assert_close(inputs[3].grad[finite], reference[3].grad[finite])


def test_fused_kernels_run_unchanged():
    """Where SDPA picks a fused kernel (on a CPU: flash attention, the mask needing no gradient),
    it runs as SDPA, bit for bit."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 2, 9, 4).unbind(0)
    fixed = torch.randn(1, 2, 9, 9)
    assert torch.equal(attention(q, k, v, fixed),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=fixed))


def test_written_out_where_sdpa_would_fall_back_to_its_math_path():
    """A learned mask has no fused kernel on a CPU: the written-out form runs, without SDPA's
    separate k scaling and "safe" softmax."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 2, 9, 4).unbind(0)
    mask = torch.randn(1, 2, 9, 9, requires_grad=True)
    with DeviceOpCounter() as counter:
        attention(q, k, v, mask)
    assert counter.counts['_safe_softmax'] == 0 and counter.counts['_softmax'] == 1
    assert counter.counts['mul'] == 1, counter.counts  # q only
