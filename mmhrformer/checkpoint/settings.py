"""The settings a checkpoint's weights need for their source's outputs, checked against a model.

Two backbone settings change every output without changing a single shape, so no load notices
them: the relative position bias (``with_rpe``: the official pose code never added it, though its
files hold the ImageNet tables) and the fusion's upsampling (``upsample_mode``). openseg's
segmentation weights also saw BGR images normalised with RGB-ordered statistics (the data
preprocessor's ``bgr_to_rgb=False``). What a file needs comes, by one rule, from:

* a file converted here: its ``meta['model_settings']`` and ``meta['data_preprocessor']``;
* a file trained here: the training config MMEngine keeps in ``meta['cfg']``;
* a file used as downloaded: its layout's row of :data:`.layouts.LAYOUTS`;
* this package's names without a meta: the bias tables it holds (``with_rpe`` only).

The commands refuse a model that differs (:func:`settings_problem` gives the line); the hosts'
own tools, where fine-tuning with other settings is legitimate and only the user knows which is
meant, log the same words as a warning (:mod:`.loading`).
"""
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..models.backbones.hrformer import HRFormer
from .layouts import LAYOUTS, TABLE, CheckpointError, StateDict, detect_layout, strip

BACKBONE_SETTINGS = ('with_rpe', 'upsample_mode')
# What each shipped config sets, so that a refusal names the fitting config at once: loading all
# of them takes MMEngine about a minute on two cores (tools/make_settings_index.py writes it).
SETTINGS_INDEX = 'settings_index.json'
DEFAULTS = dict(with_rpe=True, upsample_mode='nearest', bgr_to_rgb=True)  # HRFormer's, MMSeg's
# Where each setting lives in a config, for --cfg-options.
CONFIG_KEYS = dict(with_rpe='model.backbone.with_rpe',
                   upsample_mode='model.backbone.upsample_mode',
                   bgr_to_rgb='model.data_preprocessor.bgr_to_rgb')
SOURCES = {
    'official-cls': 'official classification weights',
    'official-seg': 'official segmentation (openseg) weights',
    'official-pose': 'official pose weights',
    'mmpose': 'MMPose weights',
    'mmhrformer': 'these weights',
}


@dataclass
class Needs:
    """What a checkpoint's weights need: ``source`` names them in messages ('official pose
    weights'), ``layout`` is the file's own layout, ``settings`` the backbone and preprocessing
    settings its outputs depend on (a subset of ``with_rpe``, ``upsample_mode``, ``bgr_to_rgb``)."""
    source: str
    layout: str
    settings: Dict[str, object] = field(default_factory=dict)


def needs_of_layout(layout: str, keys=None) -> Needs:
    """What weights of ``layout`` need, as downloaded; ``keys``, the file's, tell MMPose's
    ImageNet backbones (the official classification weights in MMPose's names, no head) from its
    pose estimators."""
    if layout == 'mmpose' and keys is not None and not any(k.startswith('head.') for k in keys):
        return Needs('MMPose ImageNet weights', layout, needs_of_layout('official-cls').settings)
    row = LAYOUTS[layout]
    settings = {k: row.settings[k] for k in BACKBONE_SETTINGS}
    settings.update(row.preprocessing)
    return Needs(SOURCES[layout], layout, settings)


def _trained_settings(cfg_text: str) -> Dict[str, object]:
    """The settings of the config MMEngine saved with a training checkpoint; {} if unreadable."""
    from mmengine.config import Config
    try:
        cfg = Config.fromstring(cfg_text, '.py')
    except Exception:  # noqa: BLE001 - a config of another machine may not load here at all
        return {}
    model = cfg.get('model') or {}
    backbone = model.get('backbone') or {}
    if 'HRFormer' not in str(backbone.get('type', '')):
        return {}
    settings = {k: backbone.get(k, DEFAULTS[k]) for k in BACKBONE_SETTINGS}
    preprocessor = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    if 'bgr_to_rgb' in preprocessor:
        settings['bgr_to_rgb'] = bool(preprocessor['bgr_to_rgb'])
    return settings


def needs_of_checkpoint(checkpoint, state: StateDict) -> Optional[Needs]:
    """What a whole checkpoint's weights need, or None when nothing tells (no HRFormer in it)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    converted = meta.get('model_settings')
    if isinstance(converted, dict) and meta.get('source_layout') in LAYOUTS:
        source = meta['source_layout']
        settings = {k: converted[k] for k in BACKBONE_SETTINGS if k in converted}
        settings.update(meta.get('data_preprocessor') or {})
        return Needs(f'{SOURCES[source]} (converted)', source, settings)
    if isinstance(meta.get('cfg'), str):
        settings = _trained_settings(meta['cfg'])
        if settings:
            return Needs('these weights', 'mmhrformer', settings)
    if state and all(k.startswith('module.') for k in state):
        state = strip(state, 'module.')
    try:
        layout, prefix = detect_layout(state)
    except CheckpointError:
        return None
    if layout != 'mmhrformer':
        return needs_of_layout(layout, state)
    if any(k.startswith(prefix) and k.endswith(TABLE) for k in state):
        return Needs(SOURCES[layout], layout, dict(with_rpe=True))
    return None


def backbone_settings(backbone: HRFormer) -> Dict[str, object]:
    """``with_rpe`` and ``upsample_mode`` of a built backbone."""
    module = backbone.stage2[0]
    return dict(with_rpe=module.branches[0][0].attn.with_rpe, upsample_mode=module.upsample_mode)


def model_settings(model: torch.nn.Module) -> Dict[str, object]:
    """The compared settings of a built host model (or backbone); {} without an HRFormer."""
    backbone = next((m for m in model.modules() if isinstance(m, HRFormer)), None)
    if backbone is None:
        return {}
    settings = backbone_settings(backbone)
    preprocessor = getattr(model, 'data_preprocessor', None)
    # MMSeg's, MMEngine's (MMPose) and MMPretrain's preprocessors name the switch differently.
    for flag in ('channel_conversion', '_channel_conversion', 'to_rgb'):
        if hasattr(preprocessor, flag):
            settings['bgr_to_rgb'] = bool(getattr(preprocessor, flag))
            break
    return settings


def differences(needs: Needs, configured: Dict[str, object]) -> List[str]:
    """The settings in which the model differs from what the weights need."""
    return [k for k, v in needs.settings.items() if k in configured and configured[k] != v]


def describe(needs: Needs, key: str, configured) -> str:
    """'official pose weights were trained without the relative position bias; this config has
    with_rpe=True' and the like."""
    need = needs.settings[key]
    if key == 'with_rpe':
        trained = f'{"with" if need else "without"} the relative position bias'
    elif key == 'bgr_to_rgb':
        trained = ('on BGR images normalised with RGB-ordered mean and std' if not need else
                   'on RGB images')
    else:
        trained = f'with {key}={need!r}'
    return f'{needs.source} were trained {trained}; this config has {key}={configured!r}'


def settings_problem(needs: Optional[Needs], model: torch.nn.Module,
                     config=None) -> Optional[str]:
    """One line for the first setting in which ``model`` differs from ``needs``, with the shipped
    config to use (given ``config``, the MMEngine ``Config`` that built ``model``) or the
    ``--cfg-options`` to set; None when they agree."""
    if needs is None:
        return None
    configured = model_settings(model)
    keys = differences(needs, configured)
    if not keys:
        return None
    words = describe(needs, keys[0], configured[keys[0]])
    fitting = fitting_config(config, needs) if config else None
    if fitting is not None:
        return f'{words}: use {fitting}'
    options = ' '.join(f'{CONFIG_KEYS[k]}={needs.settings[k]}' for k in keys)
    return f'{words}: set {options} (in the config, or with --cfg-options)'


def settings_warning(needs: Needs, configured: Dict[str, object]) -> Optional[str]:
    """The warning the hosts' tools log where a load's settings differ from what its weights
    need (the same words as the commands' refusal), or None when they agree."""
    keys = differences(needs, configured)
    if not keys:
        return None
    words = '; '.join(describe(needs, k, configured[k]) for k in keys)
    options = ' '.join(f'{CONFIG_KEYS[k]}={needs.settings[k]}' for k in keys)
    return (f'{words}: evaluated so, the outputs are not their source\'s (fine-tuning so may be '
            f'meant; to evaluate, set {options})')


def configs_root() -> Optional[Path]:
    """The shipped configs: beside the package in a clone, in ``.mim`` when installed."""
    package = Path(__file__).resolve().parents[1]
    for root in (package / '.mim' / 'configs', package.parent / 'configs'):
        if root.is_dir():
            return root
    return None


def config_settings(cfg) -> Dict[str, object]:
    """What :func:`fitting_config` compares of a loaded config: its host (``default_scope``), its
    backbone's ``arch`` and the settings of :data:`DEFAULTS`."""
    backbone = cfg.model.get('backbone', {})
    preprocessor = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    row = dict(default_scope=cfg.get('default_scope'), arch=backbone.get('arch'))
    row.update({k: backbone.get(k, DEFAULTS[k]) for k in BACKBONE_SETTINGS})
    row['bgr_to_rgb'] = bool(preprocessor.get('bgr_to_rgb', DEFAULTS['bgr_to_rgb']))
    return row


def configs_fingerprint(root: Path) -> str:
    """A hash of every config file under ``root``, the bases included."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob('*.py')):
        digest.update(path.relative_to(root).as_posix().encode() + b'\0' + path.read_bytes())
    return digest.hexdigest()


def loaded_settings(root: Path) -> Dict[str, Dict[str, object]]:
    """:func:`config_settings` of every shipped config (not the ``_base_`` parts), each loaded by
    MMEngine: seconds per config (a host base makes MMEngine read every metafile of the host's
    model index)."""
    from mmengine.config import Config
    rows = {}
    for path in sorted(root.glob('*/*.py')):
        if path.parent.name == '_base_':
            continue
        try:
            cfg = Config.fromfile(str(path))
        except Exception:  # noqa: BLE001 - a config broken here is no fitting one
            continue
        rows[path.relative_to(root).as_posix()] = config_settings(cfg)
    return rows


def write_settings_index(root: Path) -> Path:
    """Writes :data:`SETTINGS_INDEX` for the configs under ``root``."""
    index = dict(fingerprint=configs_fingerprint(root), configs=loaded_settings(root))
    path = root / SETTINGS_INDEX
    path.write_text(json.dumps(index, indent=1, sort_keys=True) + '\n')
    return path


def shipped_settings(root: Path) -> Dict[str, Dict[str, object]]:
    """:func:`loaded_settings` as the index holds them, in milliseconds; loaded when the index is
    missing or the configs changed since it was written (an edited clone)."""
    try:
        index = json.loads((root / SETTINGS_INDEX).read_text())
        if index['fingerprint'] == configs_fingerprint(root):
            return index['configs']
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return loaded_settings(root)


def fitting_config(config, needs: Needs) -> Optional[str]:
    """The shipped config of the same host and arch as ``config`` (a loaded MMEngine ``Config``)
    whose settings are what ``needs`` asks for, the nearest by name to ``config``'s file; None if
    no shipped config fits."""
    root = configs_root()
    if root is None:
        return None
    own = config_settings(config)
    own_path = Path(config.filename).resolve() if config.filename else None
    candidates = [name for name, row in shipped_settings(root).items()
                  if (root / name).resolve() != own_path
                  and (row['default_scope'], row['arch']) == (own['default_scope'], own['arch'])
                  and all(row.get(k) == v for k, v in needs.settings.items())]
    if not candidates:
        return None
    own_name = own_path.name if own_path else ''
    best = max(candidates, key=lambda name: difflib.SequenceMatcher(
        None, Path(name).name, own_name).ratio())
    return f'{root.name}/{best}'
