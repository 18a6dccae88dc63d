"""Training-mode BatchNorms whose batches a model counts at once, not one norm at a time.

``nn.BatchNorm2d`` adds 1 to its ``num_batches_tracked`` in every training call: one kernel
launch per norm, 244 of the 4,400 device ops in a training step of HRFormer-S. A model that owns
its norms' counts (:func:`own_batch_counts`, at construction) counts them all in one multi-tensor
op at the start of its forward pass (:func:`count_batches`); the norms then run through
:func:`batch_norm`, which computes what the module's forward does, without the count. Norms
replaced after construction (``convert_sync_batchnorm``) are not owned and count themselves.
Only the owner's forward counts: a submodule called on its own leaves its norms' counts alone
(they only matter to ``momentum=None``, the cumulative average), as does a recomputation of a
checkpointed block in the backward pass.
"""
import torch
import torch.nn.functional as F
from torch import nn

_OWNED = '_batch_count_owned'


def own_batch_counts(model: nn.Module) -> None:
    """Marks every ``nn.BatchNorm2d`` in ``model`` as counted by ``model``'s forward pass."""
    for m in model.modules():
        if type(m) is nn.BatchNorm2d:
            setattr(m, _OWNED, True)


def is_owned(norm: nn.Module) -> bool:
    """Whether the model counts this norm's batches (:func:`own_batch_counts`)."""
    return getattr(norm, _OWNED, False)


def _counts(norm: nn.Module) -> bool:
    return norm.training and norm.track_running_stats and norm.num_batches_tracked is not None


def count_batches(model: nn.Module) -> None:
    """Adds 1 to the batch count of every owned norm of ``model`` in training mode, in one op."""
    counters = [m.num_batches_tracked for m in model.modules() if is_owned(m) and _counts(m)]
    if counters:
        torch._foreach_add_(counters, 1)


def momentum_of(norm: nn.Module) -> float:
    """The running statistics' update factor of a training-mode norm whose batch is counted."""
    return 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum


def batch_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``; for an owned norm in training, without counting the batch again."""
    if not (is_owned(norm) and _counts(norm)):
        return norm(x)
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, True,
                        momentum_of(norm), norm.eps)
