"""Weights derived from parameters at inference (a BN folded into its conv, q / k / v stacked, the
position bias gathered), computed once per state of the parameters instead of on every call.

Deriving them takes a few small ops per layer: about 1,900 of them per HRFormer-S forward pass,
some 10 % of its time at batch 1 (256x192, CPU). An entry is reused while every source tensor
still has the same data pointer and version counter: in-place updates (optimizer steps,
``load_state_dict``) bump the version, and a new tensor (``.to()``, ``.half()``, a new
``Parameter``) has another address, since each entry keeps its sources' storages alive. Entries
live beside the module, not in it (``state_dict``, pickling and ``deepcopy`` do not see them),
and go with it.

Only inference uses the cache: with gradients recorded the derivation has to be in the graph,
and exporters, ``torch.compile`` and tracing see the derivation as ops.
"""
import weakref
from typing import Callable, Hashable, Optional, Sequence, TypeVar

import torch
from torch import nn

from .config import is_capturing

T = TypeVar('T')
_ENTRIES: 'weakref.WeakKeyDictionary[nn.Module, dict]' = weakref.WeakKeyDictionary()


def derived(owner: nn.Module, name: str, sources: Sequence[Optional[torch.Tensor]],
            compute: Callable[[], T], extra_key: Hashable = None) -> T:
    """``compute()``, reused at inference while ``sources`` (and ``extra_key``) are unchanged.

    Args:
        owner (nn.Module): The module the derived value belongs to.
        name (str): Which of the owner's derived values this is.
        sources (Sequence[Tensor | None]): Every tensor ``compute`` reads.
        compute (Callable): Derives the value from ``sources``.
        extra_key (Hashable): Anything else the value depends on (a dtype, say).
    """
    if torch.is_grad_enabled() or is_capturing() or any(
            t is not None and (t.device.type == 'meta' or t.is_inference()) for t in sources):
        return compute()  # (inference-mode tensors have no version counter)
    key = tuple(None if t is None else (t.data_ptr(), t._version) for t in sources), extra_key
    entries = _ENTRIES.setdefault(owner, {})
    entry = entries.get(name)
    if entry is not None and entry[0] == key:
        return entry[2]
    value = compute()
    storages = [t.untyped_storage() for t in sources if t is not None]
    entries[name] = (key, storages, value)
    return value
