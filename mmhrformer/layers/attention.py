"""Scaled dot-product attention with an additive mask: a fused kernel where one takes it, else
written out.

``F.scaled_dot_product_attention`` runs a fused kernel where the device has one for these inputs
(on CUDA, the memory-efficient kernel differentiates the learned position bias, for head sizes
it supports; on a CPU, flash attention at inference). Where none does, it falls back to its math
path: q and k scaled separately, and a "safe" softmax that scans every score row for all
``-inf``. Written out instead, with the scaling on q (the small operand) and a plain softmax,
that path runs fewer ops (12 instead of 15 per call with its backward) and in CPU training about
a third less time; no row is ever fully masked here, since a window always holds real tokens.
SDPA's own choice (``torch._fused_sdp_choice``) decides, so that this holds on every device.

Exported, it is written out too: MatMul, Add, Softmax, MatMul with the scale a constant folded
into q, the pattern the runtimes fuse. The ONNX form of SDPA derives its scale from q's traced
size at run time (Shape, Gather, Cast, two Sqrt) and scales q and k separately. Under
``torch.compile`` SDPA is left to the compiler, which matches its own patterns.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from .config import is_exporting


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v``.

    Args:
        q, k, v (Tensor): Shape (B, heads, N, d).
        mask (Tensor, optional): Additive, broadcastable to (B, heads, N, N).

    Returns:
        Tensor: Shape (B, heads, N, d).
    """
    if is_exporting() or (not torch.compiler.is_compiling() and torch._fused_sdp_choice(
            q, k, v, mask) == int(SDPBackend.MATH)):
        # int(): the head size is fixed in every graph, so the scale is a constant.
        scores = torch.matmul(q * int(q.shape[-1])**-0.5, k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        return torch.matmul(scores.softmax(-1), v)
    # SDPA's default scale is d**-0.5, the official q scaling.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
