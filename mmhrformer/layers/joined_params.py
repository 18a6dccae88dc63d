"""Many small parameters as views of one tensor made by one op, for a training step.

Training cannot reuse derived weights (:mod:`~mmhrformer.layers.derived_weights`): each step
derives them again inside the autograd graph. Per transformer block that was two concatenations
(the stacked q / k / v weight and bias) and a gather of the position bias with its backward: 176
device ops per HRFormer-S step, small enough that launching them cost more than running them.
Done once per module over all its blocks, they are one concatenation of the q / k / v parameters
and one of the bias tables, one gather for all position biases, and in the backward pass one
concatenation for each split: 6 ops per module (42 per step).
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


def joined(groups: Sequence[Sequence[torch.Tensor]]) -> Tuple[torch.Tensor, ...]:
    """Each group's tensors flattened and concatenated in order, all groups by one ``cat``.

    Args:
        groups (Sequence[Sequence[Tensor]]): Groups of contiguous tensors.

    Returns:
        tuple[Tensor]: Per group a 1-d view of the joined tensor; the backward pass of the views
        is one ``cat`` of their gradients, which go to the sources as views (no copy).
    """
    flat = torch.cat([t.reshape(-1) for group in groups for t in group])
    return flat.split_with_sizes([sum(t.numel() for t in group) for group in groups])


def gather_position_biases(tables: Sequence[torch.Tensor], joint_index: torch.Tensor,
                           heads: Sequence[int]) -> Tuple[torch.Tensor, ...]:
    """The relative position bias of several windows' attentions, in one gather.

    Args:
        tables (Sequence[Tensor]): Per attention its ((2w-1)^2, heads_i) bias table.
        joint_index (Tensor): :func:`~mmhrformer.layers.relative_position.joint_position_index`
            of these tables, shape (sum_i heads_i * N * N, ).
        heads (Sequence[int]): heads_i.

    Returns:
        tuple[Tensor]: Per attention its bias, shape (1, heads_i, N, N).
    """
    flat = torch.cat([t.reshape(-1) for t in tables])
    # an embedding lookup: its gradient is one op, where indexing's is a zero fill and an
    # accumulating index_put
    gathered = F.embedding(joint_index, flat.view(-1, 1)).view(-1)
    n = int(round((joint_index.numel() / sum(heads))**0.5))
    return tuple(bias.view(1, h, n, n)
                 for bias, h in zip(gathered.split_with_sizes([h * n * n for h in heads]), heads))
