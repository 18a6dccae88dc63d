"""The relative position bias of window attention: its index and its resizing to other windows."""
import math

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
