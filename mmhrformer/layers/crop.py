"""Cropping padded (B, H, W, C) tokens back to their size, as one copy."""
from typing import Tuple

import torch
import torch.nn.functional as F

from .config import is_exporting


def crop_tokens(x: torch.Tensor, pad: Tuple[int, int, int, int],
                size: Tuple[int, int]) -> torch.Tensor:
    """``x[:, top:top + h, left:left + w]`` for ``pad = (top, bottom, left, right)``.

    Written as a pad by negative amounts: one copy forward and one pad backward, where the two
    slices would leave a strided view (the next linear layer then runs as a GEMM plus a separate
    bias add) and, in the backward pass, a zero fill and a copy for each sliced dimension.
    Exported graphs keep the slices, which the runtimes fold into the next op.

    Args:
        x (Tensor): Padded tokens, shape (B, H + top + bottom, W + left + right, C).
        pad (tuple[int]): (top, bottom, left, right).
        size (tuple[int]): (H, W).

    Returns:
        Tensor: Shape (B, H, W, C).
    """
    top, bottom, left, right = pad
    if is_exporting():
        return x[:, top:top + size[0], left:left + size[1]]
    return F.pad(x, (0, 0, -left, -right, -top, -bottom))
