"""The relative position bias of window attention: its index and its resizing to other windows."""
import math
from typing import Sequence

import torch
import torch.nn.functional as F


def relative_position_index(window_size: int) -> torch.Tensor:
    """(w*w, w*w) index into the ((2w-1)^2, heads) bias table, Swin's formula."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # 2, w*w
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def resize_rpe_table(table: torch.Tensor, window_size: int) -> torch.Tensor:
    """Resizes a ((2w-1)^2, heads) bias table to another window, per head, bilinearly.

    Bilinear (align_corners=False) is what the official segmentation code used when it fine-tuned
    window-7 ImageNet weights with windows 13 and 15.
    """
    old = math.isqrt(table.shape[0])
    new = 2 * window_size - 1
    if old * old != table.shape[0]:
        raise ValueError(f'relative position bias table of shape {tuple(table.shape)} is not square')
    if old == new:
        return table
    grid = table.T.reshape(1, -1, old, old).float()
    grid = F.interpolate(grid, size=(new, new), mode='bilinear', align_corners=False)
    return grid.reshape(-1, new * new).T.to(table.dtype).contiguous()


def joint_position_index(window_size: int, heads: Sequence[int]) -> torch.Tensor:
    """Index into the concatenation of flattened ((2w-1)^2, heads_i) tables, one per attention,
    that gathers each attention's (heads_i, w*w, w*w) bias in turn: shape
    (sum_i heads_i * w^4, )."""
    index = relative_position_index(window_size).view(1, -1)
    rows = (2 * window_size - 1)**2
    parts, offset = [], 0
    for h in heads:
        parts.append((offset + index * h + torch.arange(h).view(h, 1)).view(-1))
        offset += rows * h
    return torch.cat(parts)
