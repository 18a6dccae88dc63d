"""A whole model's checkpoint, checked against the model a config builds, for the commands.

The hosts' loaders (``load_from``, the inferencers) load non-strictly: a checkpoint of another
task or data set leaves heads at random with a warning in the log, and the command goes on to
draw nonsense or fail deep inside. Every command of this package (demo, export, the host
launchers) loads through :func:`load_checked` instead, or checks first with
:func:`check_against_config`: the file is read with one-line errors, mapped from any known layout
(:mod:`.loading`), and must set every weight of the model with the right shapes; then the
model's settings must be those the weights were trained with (:mod:`.settings`), or the line
names the shipped config to use.
"""
import re
from typing import List, Optional

import torch

from .layouts import CheckpointError, name_keys
from .loading import settings_checked_by_caller
from .reading import read_checkpoint, state_dict_of
from .settings import needs_of_checkpoint, settings_problem

# Which model a checkpoint's keys belong to, by the names of its heads: the hosts' and the
# official forks' (openseg's OCR head, mmpose 0.x's keypoint head, the official classifier).
TASKS = (('decode_head.', 'segmentor'), ('conv3x3.', 'segmentor'),
         ('head.final_layer.', 'pose estimator'), ('keypoint_head.', 'pose estimator'),
         ('head.fc.', 'classifier'), ('classifier.', 'classifier'))
SIZE_MISMATCH = re.compile(r'size mismatch for (\S+): copying a param with shape '
                           r'torch\.Size\(\[([\d, ]*)\]\) from checkpoint, the shape in current '
                           r'model is torch\.Size\(\[([\d, ]*)\]\)')


def task_of(keys) -> str:
    """'segmentor', 'pose estimator', 'classifier' or 'backbone' (no head) for state dict keys."""
    keys = list(keys)
    for prefix, task in TASKS:
        if any(k.startswith(prefix) for k in keys):
            return task
    return 'backbone without a head' if keys else 'empty state dict'


def _meaningful(keys: List[str]) -> List[str]:
    return [k for k in keys if not k.endswith('num_batches_tracked')]


def load_checked(model: torch.nn.Module, path: str, config=None) -> dict:
    """Loads the checkpoint at ``path`` into ``model`` (a host's segmentor, pose estimator or
    classifier), every weight set, any known HRFormer layout mapped, the settings that change
    outputs (``with_rpe``, ``upsample_mode``, channel order) those the weights need.

    Args:
        model (nn.Module): The model the config builds.
        path (str): The checkpoint.
        config (Config, optional): The MMEngine config that built ``model``: a refusal then
            names the shipped config that fits the weights.

    Returns:
        dict: The checkpoint's ``meta`` (``dataset_meta`` among it, when training or the
        converter stored it), or {}.

    Raises:
        CheckpointError: one line naming ``path`` and what it holds against what the model
            needs: not a checkpoint, truncated, another task, another arch or number of classes,
            other settings than the weights were trained with.
    """
    checkpoint = read_checkpoint(str(path), unsafe_hint='if you trust it, load it with '
                                 'torch.load(weights_only=False) and save its state dict')
    state = state_dict_of(checkpoint, path)
    found, needed = task_of(state), task_of(model.state_dict())
    if found != needed and not found.startswith('backbone'):
        raise CheckpointError(f'{path}: a {found} checkpoint, the config builds a {needed}')
    needs = needs_of_checkpoint(checkpoint, state)  # before the load maps the names in place
    try:
        with settings_checked_by_caller():
            result = model.load_state_dict(state, strict=False)
    except CheckpointError as err:
        raise CheckpointError(f'{path}: {err}') from None
    except RuntimeError as err:  # torch raises on shapes even when not strict
        misfit = [f'{k} ({a}) vs ({b})' for k, a, b in SIZE_MISMATCH.findall(str(err))]
        if not misfit:
            raise
        raise CheckpointError(f'{path}: {len(misfit)} shapes do not fit the model of the config '
                              f'(checkpoint vs config): {name_keys(misfit, 2)}') from None
    missing, unexpected = _meaningful(result.missing_keys), _meaningful(result.unexpected_keys)
    if missing or unexpected:
        what = (f'a {found} checkpoint, the config builds a {needed}' if found != needed else
                f'a {found} checkpoint of another layout than the config\'s {needed}')
        problems = [f'{len(keys)} keys {kind}: {name_keys(keys, 3)}' for kind, keys in (
            ('missing', missing), ('unexpected', unexpected)) if keys]
        raise CheckpointError(f'{path}: {what}; ' + '; '.join(problems))
    problem = settings_problem(needs, model, config)
    if problem:
        raise CheckpointError(f'{path}: {problem}')
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta if isinstance(meta, dict) else {}


def check_against_config(config, path: str, cfg_options: Optional[dict] = None) -> dict:
    """Builds the model of ``config`` (a path or an MMEngine ``Config``; ``cfg_options`` merged
    in, as the hosts' tools do) in its host and loads ``path`` into it with :func:`load_checked`;
    returns the checkpoint's meta.

    Raises:
        CheckpointError: as :func:`load_checked`.
    """
    from mmengine.config import Config

    from .convert import build_in_host
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return load_checked(build_in_host(cfg.default_scope, cfg.model), path, cfg)
