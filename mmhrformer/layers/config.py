"""Switches for the fast paths, and the detection of graph capture that turns them off.

As timm's ``layers/config.py``: one place that says when an optimised kernel may replace the
reference ops. The fused CPU kernels (:mod:`mmhrformer.layers.onednn`) are on by default; turn them
off for the whole process with ``set_fused_kernels(False)`` or the environment variable
``MMHRFORMER_FUSED_KERNELS=0`` (to compare speed or to rule them out while debugging; the numbers
are the same up to float32 rounding).
"""
import contextlib
import os
from typing import Iterator, Tuple

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

_USE_FUSED_KERNELS = os.environ.get('MMHRFORMER_FUSED_KERNELS', '1') != '0'
_FIXED_SIZE_EXPORT = False


def use_fused_kernels() -> bool:
    """Whether the fused kernels are switched on (:func:`set_fused_kernels`)."""
    return _USE_FUSED_KERNELS


def set_fused_kernels(enable: bool = True) -> None:
    """Switches the fused inference kernels on or off for the whole process."""
    global _USE_FUSED_KERNELS
    _USE_FUSED_KERNELS = bool(enable)


def is_exporting() -> bool:
    """True while exporting to ONNX: the graph gets the reference ops, in the layout and form
    the runtimes fuse (:func:`free_sizes` says whether sizes are free)."""
    return torch.onnx.is_in_onnx_export()


@contextlib.contextmanager
def fixed_size_export() -> Iterator[None]:
    """Declares the exports inside the block fixed-size: the graph serves its example's size only.

    TorchScript's exporter records every size read from a tensor as graph ops (Shape, Gather,
    Cast, Div, ... thousands of them for the window padding and the fusion resizes of
    HRFormer-S), which only a runtime's optimizer folds away again. In a fixed-size export the
    model reads sizes as Python ints (:func:`shape_of`), so they are constants of the graph, and
    takes the same no-op skips as eager mode (:func:`free_sizes` is False).
    """
    global _FIXED_SIZE_EXPORT
    previous, _FIXED_SIZE_EXPORT = _FIXED_SIZE_EXPORT, True
    try:
        yield
    finally:
        _FIXED_SIZE_EXPORT = previous


def free_sizes() -> bool:
    """True while exporting a graph whose input size is free: then no shape-dependent skip.

    Eager mode and fixed-size exports (:func:`fixed_size_export`) skip pads, crops and resizes
    that this input's size makes no-ops; a graph for every size keeps them all (they are exact
    no-ops, so the numbers are the same) and holds no branch on the input size. Callers test
    ``free_sizes()`` first, so that a symbolic size is never turned into a guard.
    """
    return is_exporting() and not _FIXED_SIZE_EXPORT


def shape_of(x: torch.Tensor) -> Tuple:
    """``x.shape`` as a tuple: Python ints in eager mode and in a fixed-size export (there the
    tracer would otherwise record each size as ops), traced sizes in a free-size export."""
    if _FIXED_SIZE_EXPORT and is_exporting():
        return tuple(int(s) for s in x.shape)
    return tuple(x.shape)


def is_capturing() -> bool:
    """True while something records or intercepts the ops instead of just running them.

    ONNX export, TorchScript scripting or tracing, ``torch.compile`` (dynamo) and tools that run
    under a dispatch mode (FLOP counters, FakeTensor): they must see the reference ops, which
    they know how to export, differentiate, count or fuse themselves.
    """
    return (is_exporting() or torch.jit.is_scripting() or torch.jit.is_tracing()
            or torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None)
