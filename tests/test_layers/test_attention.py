"""Attention with a learned additive mask: the written-out training path against SDPA."""
import pytest
import torch
import torch.nn.functional as F

from mmhrformer.layers import attention


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


def test_other_cases_call_sdpa():
    """Without a gradient to the mask (inference, a fixed mask) SDPA's kernels run unchanged."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 2, 9, 4).unbind(0)
    mask = torch.randn(1, 2, 9, 9, requires_grad=True)
    with torch.no_grad():
        assert torch.equal(attention(q, k, v, mask),
                           F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    fixed = mask.detach()
    assert torch.equal(attention(q, k, v, fixed),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=fixed))
