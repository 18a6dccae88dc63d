"""Switches for the fast paths, and the detection of graph capture that turns them off.

As timm's ``layers/config.py``: one place that says when an optimised kernel may replace the
reference ops. The fused CPU kernels (:mod:`mmhrformer.layers.onednn`) are on by default; turn them
off for the whole process with ``set_fused_kernels(False)`` or the environment variable
``MMHRFORMER_FUSED_KERNELS=0`` (to compare speed or to rule them out while debugging; the numbers
are the same up to float32 rounding).
"""
import os

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

_USE_FUSED_KERNELS = os.environ.get('MMHRFORMER_FUSED_KERNELS', '1') != '0'


def use_fused_kernels() -> bool:
    """Whether the fused kernels are switched on (:func:`set_fused_kernels`)."""
    return _USE_FUSED_KERNELS


def set_fused_kernels(enable: bool = True) -> None:
    """Switches the fused inference kernels on or off for the whole process."""
    global _USE_FUSED_KERNELS
    _USE_FUSED_KERNELS = bool(enable)


def is_exporting() -> bool:
    """True while exporting: then shape-dependent no-op skips must not be taken.

    Eager mode skips pads, crops and resizes that this input's size makes no-ops. An exported
    graph keeps them all (they are exact no-ops, so the numbers are the same) and holds no branch
    on the input size, so one graph serves every size. Callers test ``is_exporting()`` first, so
    that a symbolic size is never turned into a guard.
    """
    return torch.onnx.is_in_onnx_export()


def is_capturing() -> bool:
    """True while something records or intercepts the ops instead of just running them.

    ONNX export, TorchScript scripting or tracing, ``torch.compile`` (dynamo) and tools that run
    under a dispatch mode (FLOP counters, FakeTensor): they must see the reference ops, which
    they know how to export, differentiate, count or fuse themselves.
    """
    return (is_exporting() or torch.jit.is_scripting() or torch.jit.is_tracing()
            or torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None)
