"""Scaled dot-product attention with an additive mask, and a faster path where the mask is learned.

The relative position bias is an additive mask that needs a gradient. No fused kernel of
``F.scaled_dot_product_attention`` differentiates its mask on a CPU, so in CPU training it falls
back to its math path: a separate q scaling, and a "safe" softmax that scans every score row for
all ``-inf`` (``all`` / ``where`` / ``isneginf`` passes). Written out with the scaling on q (the
small operand) and a plain softmax, the training step's attention costs about a third less; no
row is ever fully masked here, since a window always holds real tokens.

Exported, it is written out too: MatMul, Add, Softmax, MatMul with the scale a constant folded
into q, the pattern the runtimes fuse. The ONNX form of SDPA derives its scale from q's traced
size at run time (Shape, Gather, Cast, two Sqrt) and scales q and k separately.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .config import is_capturing, is_exporting


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v``.

    Args:
        q, k, v (Tensor): Shape (B, heads, N, d).
        mask (Tensor, optional): Additive, broadcastable to (B, heads, N, N).

    Returns:
        Tensor: Shape (B, heads, N, d).
    """
    if is_exporting() or (mask is not None and mask.requires_grad and torch.is_grad_enabled()
                          and q.device.type == 'cpu' and not is_capturing()):
        # int(): the head size is fixed in every graph, so the scale is a constant.
        scores = torch.matmul(q * int(q.shape[-1])**-0.5, k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        return torch.matmul(scores.softmax(-1), v)
    # SDPA's default scale is d**-0.5, the official q scaling.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
