"""Lets ``torch.load(weights_only=True)`` read MMEngine's training checkpoints, and nothing more.

torch >= 2.6 loads with ``weights_only=True`` by default, which MMEngine 0.10.7's checkpoint
loader (resume, ``load_from``, ``tools/test.py``, the inferencers) does not override. Its
checkpoints pickle more than tensors: the message hub's ``HistoryBuffer`` logs (numpy arrays and
scalars) and, for MMPose, the data set's keypoint metainfo (numpy arrays). Saving checkpoints with
the MMSeg, MMPose and MMPretrain runners (torch 2.14, numpy 2.4) and listing their globals
(``torch.serialization.get_unsafe_globals_in_checkpoint``) gives exactly:

    numpy._core.multiarray._reconstruct, numpy._core.multiarray.scalar, numpy.ndarray, numpy.dtype,
    mmengine.logging.history_buffer.HistoryBuffer, builtins.getattr

plus, when loading, the classes of the dtypes the arrays hold (``numpy.dtypes.Float64DType``, ...):
the numeric ones are allowed (bool, signed and unsigned integers, floats).

AMP adds nothing: ``AmpOptimWrapper`` saves its loss scaler's state as plain numbers.
``getattr`` is how a ``HistoryBuffer`` pickles its statistics methods (``getattr(HistoryBuffer,
'mean')``); allowing the builtin would let a file read any attribute of any allowed object, so
the name is bound to :func:`history_buffer_method`, which returns those methods and refuses
anything else. Every other global is still refused with torch's own message.
"""
import pickle

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core import multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray


NUMERIC_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                  np.uint64, np.float16, np.float32, np.float64)


def history_buffer_method(owner, name: str):
    """``getattr`` as MMEngine's pickled ``HistoryBuffer`` state uses it, and only that."""
    from mmengine.logging import HistoryBuffer
    # The built-in statistics are methods of the class itself; others registered with
    # HistoryBuffer.register_statistics live in _statistics_methods.
    method = vars(HistoryBuffer).get(name, HistoryBuffer._statistics_methods.get(name))
    if owner is HistoryBuffer and not name.startswith('_') and callable(method):
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refused getattr({getattr(owner, "__name__", type(owner).__name__)}, {name!r}): this '
        "checkpoint's getattr is not a HistoryBuffer statistics method")


def mmengine_checkpoint_globals() -> list:
    """The allowlist: objects, and (object, pickled name) pairs for the names they stand for."""
    from mmengine.logging import HistoryBuffer
    allowed = [np.ndarray, np.dtype, HistoryBuffer, (history_buffer_method, 'builtins.getattr')]
    allowed += [type(np.dtype(t)) for t in NUMERIC_DTYPES]
    for name in ('_reconstruct', 'scalar'):
        function = getattr(multiarray, name)
        allowed.append(function)
        # Checkpoints written under the other numpy major version name the other module.
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            if module != function.__module__:
                allowed.append((function, f'{module}.{name}'))
    return allowed


def allow_mmengine_checkpoints() -> None:
    """Adds the allowlist to torch's safe globals (for this process; idempotent)."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
