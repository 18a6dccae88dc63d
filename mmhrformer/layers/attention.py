"""Scaled dot-product attention with an additive mask over packed q / k / v: a fused kernel where
one takes it, else written out.

``F.scaled_dot_product_attention`` runs a fused kernel where the device has one for these inputs
(on CUDA, the memory-efficient kernel differentiates the learned position bias, for head sizes
it supports; on a CPU, flash attention at inference). Where none does, it falls back to its math
path: q and k scaled separately, and a "safe" softmax that scans every score row for all
``-inf``. Written out instead (:class:`PackedAttention`), the scale rides on the first GEMM
(``baddbmm``'s alpha), the mask is added in place and the gradients of q, k and v are written
straight into one packed tensor: 10 ops per call with its backward instead of SDPA's 15 (or 13
for the same ops under autograd, which keeps a scaled copy of q and stacks the three gradients),
and in CPU training about a third less time than SDPA. No row is ever fully masked here, since
a window always holds real tokens. SDPA's own choice (``torch._fused_sdp_choice``) decides, so
that this holds on every device.

Exported, it is written out as plain ops: MatMul, Add, Softmax, MatMul with the scale a constant
folded into q, the pattern the runtimes fuse. The ONNX form of SDPA derives its scale from q's
traced size at run time (Shape, Gather, Cast, two Sqrt) and scales q and k separately. Under
``torch.compile`` SDPA is left to the compiler, which matches its own patterns.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.nn.attention import SDPBackend

from .config import is_exporting


class PackedAttention(torch.autograd.Function):
    """``softmax(q k^T * scale + mask) v`` for q, k, v packed in one (3, B, heads, N, d) tensor,
    differentiated by hand: the backward pass writes the q, k and v gradients into one packed
    gradient (no stack of three) and folds the scale into its GEMMs. Keeps the packed input and
    the probabilities, as autograd would (less its scaled copy of q). Float32 / float64 without
    autocast; under autocast :func:`attention` writes the ops out for autograd, which casts each."""

    @staticmethod
    def forward(ctx, qkv, mask, scale):
        probs, out = _scores_softmax_v(qkv, mask, scale)
        ctx.scale = scale
        ctx.mask_shape = None if mask is None else mask.shape
        ctx.save_for_backward(qkv, probs)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        qkv, probs = ctx.saved_tensors
        _, b, heads, n, d = qkv.shape
        q, k, v = (t.view(b * heads, n, d) for t in qkv.unbind(0))
        grad = grad.reshape(b * heads, n, d)
        grad_qkv = torch.empty_like(qkv)
        grad_q, grad_k, grad_v = (t.view(b * heads, n, d) for t in grad_qkv.unbind(0))
        grad_probs = torch.bmm(grad, v.transpose(1, 2))
        torch.bmm(probs.transpose(1, 2), grad, out=grad_v)
        grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        # beta=0: the uninitialised memory is never read
        grad_q.baddbmm_(grad_scores, k, beta=0, alpha=ctx.scale)
        grad_k.baddbmm_(grad_scores.transpose(1, 2), q, beta=0, alpha=ctx.scale)
        grad_mask = None
        if ctx.needs_input_grad[1]:
            grad_mask = grad_scores.view(b, heads, n, n).sum_to_size(ctx.mask_shape)
        return grad_qkv, grad_mask, None


def _scores_softmax_v(qkv: torch.Tensor, mask: Optional[torch.Tensor], scale: float):
    """The probabilities (B*heads, N, N) and the output (B, heads, N, d), in four ops."""
    _, b, heads, n, d = qkv.shape
    q, k, v = (t.reshape(b * heads, n, d) for t in qkv.unbind(0))
    scores = q.new_empty(b * heads, n, n).baddbmm_(q, k.transpose(1, 2), beta=0, alpha=scale)
    if mask is not None:
        scores.view(b, heads, n, n).add_(mask)
    probs = scores.softmax(-1)
    return probs, torch.bmm(probs, v).view(b, heads, n, d)


def attention(qkv: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v``.

    Args:
        qkv (Tensor): q, k and v packed, shape (3, B, heads, N, d).
        mask (Tensor, optional): Additive, broadcastable to (B, heads, N, N).

    Returns:
        Tensor: Shape (B, heads, N, d).
    """
    q, k, v = qkv.unbind(0)
    # int(): the head size is fixed in every graph, so the scale is a constant.
    scale = int(q.shape[-1])**-0.5
    if is_exporting():
        return _written_out(q, k, v, mask, scale)
    if torch.compiler.is_compiling() or torch._fused_sdp_choice(
            q, k, v, mask) != int(SDPBackend.MATH):
        # SDPA's default scale is d**-0.5, the official q scaling.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if torch.is_autocast_enabled(qkv.device.type) or qkv.dtype not in (torch.float32,
                                                                        torch.float64):
        return _written_out(q, k, v, mask, scale)
    if torch.is_grad_enabled() and (qkv.requires_grad or mask is not None and mask.requires_grad):
        return PackedAttention.apply(qkv.contiguous(), mask, scale)
    return _scores_softmax_v(qkv.contiguous(), mask, scale)[1]


def _written_out(q, k, v, mask, scale) -> torch.Tensor:
    """Plain ops, for exporters and for autocast to cast one by one."""
    scores = torch.matmul(q * scale, k.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask
    return torch.matmul(scores.softmax(-1), v)
