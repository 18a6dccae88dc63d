"""Attention with a learned additive mask over packed q / k / v: the hand-differentiated path
against SDPA, and which path runs where."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmhrformer.layers import attention

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
from launch_count import DeviceOpCounter  # noqa: E402


def packed_and_mask(mask_shape, dtype=torch.float32):
    torch.manual_seed(0)
    qkv = torch.randn(3, 6, 2, 9, 4, dtype=dtype)
    mask = torch.randn(mask_shape, dtype=dtype)
    mask[..., -2:] = float('-inf')  # padded keys, never a whole row
    return qkv, mask


# Mask shapes the backbone makes: the relative position bias alone (1, heads, N, N), and with the
# padding mask (B*nW, heads, N, N); plus a per-window one with heads broadcast.
@pytest.mark.parametrize('mask_shape', [(1, 2, 9, 9), (6, 2, 9, 9), (6, 1, 9, 9)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_learned_mask_path_matches_sdpa_values_and_gradients(mask_shape, dtype):
    qkv, mask = packed_and_mask(mask_shape, dtype)
    inputs = [t.clone().requires_grad_() for t in (qkv, mask)]
    reference = [t.clone().requires_grad_() for t in (qkv, mask)]
    out = attention(*inputs)
    expected = F.scaled_dot_product_attention(*reference[0].unbind(0), attn_mask=reference[1])
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(inputs[0].grad, reference[0].grad)
    finite = torch.isfinite(mask)
    torch.testing.assert_close(inputs[1].grad[finite], reference[1].grad[finite])
    assert inputs[1].grad.shape == mask.shape


def test_gradient_of_the_mask_alone_and_without_gradients():
    qkv, mask = packed_and_mask((1, 2, 9, 9))
    learned = mask.clone().requires_grad_()
    out = attention(qkv, learned)
    out.sum().backward()
    reference = mask.clone().requires_grad_()
    F.scaled_dot_product_attention(*qkv.unbind(0), attn_mask=reference).sum().backward()
    finite = torch.isfinite(mask)
    torch.testing.assert_close(learned.grad[finite], reference.grad[finite])
    with torch.no_grad():
        torch.testing.assert_close(attention(qkv, learned), out)


def test_fused_kernels_run_unchanged():
    """Where SDPA picks a fused kernel (on a CPU: flash attention, the mask needing no gradient),
    it runs as SDPA, bit for bit."""
    torch.manual_seed(0)
    qkv = torch.randn(3, 4, 2, 9, 4)
    fixed = torch.randn(1, 2, 9, 9)
    assert torch.equal(attention(qkv, fixed),
                       F.scaled_dot_product_attention(*qkv.unbind(0), attn_mask=fixed))


def test_ten_ops_where_sdpa_would_fall_back_to_its_math_path():
    """A learned mask has no fused kernel on a CPU: the hand-differentiated form runs, without
    SDPA's separate q and k scaling, its "safe" softmax, or a stack of the three gradients."""
    qkv, mask = packed_and_mask((1, 2, 9, 9))
    qkv.requires_grad_()
    mask.requires_grad_()
    with DeviceOpCounter() as counter:
        out = attention(qkv, mask)
        out.backward(torch.ones_like(out))
    assert counter.counts['_safe_softmax'] == 0 and counter.counts['_softmax'] == 1
    assert not {'mul', 'stack', 'div'} & set(counter.counts), counter.counts
    # forward: baddbmm_, add_, _softmax, bmm; backward: 2 bmm, softmax's, 2 baddbmm_, the mask's sum
    assert sum(counter.counts.values()) == 10 + counter.counts['ones_like'], counter.counts


def test_autocast_writes_the_ops_out_for_autograd():
    qkv, mask = packed_and_mask((1, 2, 9, 9))
    qkv.requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attention(qkv, mask)
    assert out.dtype == torch.bfloat16 and out.grad_fn.name() != 'PackedAttentionBackward'
    expected = F.scaled_dot_product_attention(*qkv.unbind(0), attn_mask=mask)
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)
