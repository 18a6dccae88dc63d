"""Reading a checkpoint file, with every failure as one line that names the file.

Every command and loader of this package reads weights through :func:`read_checkpoint`: the
converter, the backbone's ``init_cfg`` (``Pretrained``), and the checked loading of whole models
(demo, export). Files are read with ``torch.load(weights_only=True)``; MMEngine's own training
checkpoints load that way once ``mmhrformer`` is imported (:mod:`.safe_globals`).
"""
import os
import pickle
import re

import torch

from .layouts import CheckpointError, StateDict, name_keys, strip

UNSAFE_HINT = 'add --unsafe-load only if you trust the file (it runs code from it)'


def read_checkpoint(path: str, unsafe: bool = False, unsafe_hint: str = UNSAFE_HINT):
    """``torch.load`` of ``path`` on the CPU; every failure becomes a :class:`CheckpointError`.

    Args:
        path (str): The file.
        unsafe (bool): Unpickle arbitrary objects (``weights_only=False``): trusted files only.
        unsafe_hint (str): What the error of a file that pickles other objects tells the user
            to do (the converter has ``--unsafe-load``; other callers name the converter).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: no such file')
    try:
        return torch.load(path, map_location='cpu', weights_only=not unsafe)
    except Exception as err:  # noqa: BLE001 - torch.load fails in many ways on foreign bytes
        names = unsafe_globals(path, err) if isinstance(err, pickle.UnpicklingError) else []
        if names:
            raise CheckpointError(
                f'{path} pickles Python objects besides tensors ({name_keys(names, 3)}), which '
                f'weights_only=True refuses to load; {unsafe_hint}') from None
        raise CheckpointError(f'{path} is truncated, corrupt or not a PyTorch checkpoint '
                              f'({type(err).__name__}: {detail(err)})') from None


def unsafe_globals(path: str, err: Exception) -> list:
    """The classes / functions a refused file pickles (none: it is no checkpoint at all)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - legacy (non-zip) files: torch names the first one
        return re.findall(r'GLOBAL (\S+) was not an allowed global', str(err))[:1]


def detail(err: Exception) -> str:
    """The informative line of an exception message."""
    text = str(err)
    if 'WeightsUnpickler error:' in text:  # skip torch's generic weights_only preamble
        text = text.split('WeightsUnpickler error:', 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else ''


def unwrap(checkpoint) -> StateDict:
    """The state dict inside a checkpoint: under 'state_dict' or 'model', or the dict itself."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError('not a state dict or checkpoint dict '
                              f'(got {type(checkpoint).__name__})')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError('no state dict of tensors found (looked under "state_dict", '
                              '"model" and the top level)')
    return dict(checkpoint)


def state_dict_of(checkpoint, path: str) -> StateDict:
    """The state dict in a loaded checkpoint, without DataParallel's ``module.``; errors name
    ``path``."""
    try:
        state = unwrap(checkpoint)
    except CheckpointError as err:
        raise CheckpointError(f'{path}: {err}') from None
    return strip(state, 'module.') if all(k.startswith('module.') for k in state) else state
