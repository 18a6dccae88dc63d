"""Weights of any known HRFormer layout, mapped while a model loads them.

Users hand the backbone, or a whole host model around it, an official checkpoint, an MMPose one or
this package's own, through the backbone's ``init_cfg`` (``Pretrained``), a runner's
``load_from``, MMEngine's ``load_checkpoint`` / ``load_state_dict`` or ``Module.load_state_dict``.
All of these end in ``Module._load_from_state_dict``, and torch and MMEngine alike hand each
module only the keys under its own prefix. So the mapping runs in two places, with the layout
table of :mod:`.layouts` that the converter uses (the weights equal the converted checkpoint's):

* the backbone's own ``_load_from_state_dict`` (:func:`adapt_backbone_state`): a foreign layout
  under the backbone's prefix becomes this package's names; weights that leave a backbone
  parameter unset, or do not fit its shapes, stop the load with :class:`CheckpointError`;
* a load pre-hook on the module holding the backbone (:func:`adapt_whole_checkpoint`, put there
  when an ``HRFormer`` is assigned as its child): whole official checkpoints, whose heads
  (openseg's OCR heads, the official classifier) and un-prefixed backbone keys only that module
  sees.

Both are plugged in from here (:func:`install`, called by ``import mmhrformer``): the model files
know nothing of layouts, and this package sits above them.
"""
import contextlib
import contextvars
import functools
import re
from typing import List, Optional

import torch
from mmengine.logging import MMLogger
from torch.nn.modules.module import register_module_module_registration_hook

from ..models.backbones.hrformer import ARCH_ZOO, HRFormer
from ..models.necks.hrformer_cls_neck import HRFormerClsNeck
from .convert import backbone_arch
from .layouts import (BACKBONE_NAMES, INDEX, LAYOUTS, OFFICIAL_CLS_HEAD_PREFIXES, TABLE,
                      CheckpointError, StateDict, detect_layout, find_backbones, name_keys,
                      official_cls_head, official_seg_heads, strip)
from .reading import read_checkpoint, state_dict_of
from .settings import (SOURCES, Needs, backbone_settings, model_settings, needs_of_layout,
                       settings_warning)

CONVERT_HINT = 'convert it first: hrformer2mmseg SRC DST'
# Whole checkpoints handed over as a state dict: the official cls code's {'model': ...}, and
# MMEngine's {'state_dict': ...} given to a plain Module.load_state_dict.
WRAPPERS = ('state_dict', 'model')
UNUSED_FUSION = re.compile(r'stage4\.\d+\.fuse_layers\.')


def _logger():
    return MMLogger.get_current_instance()


def _unwrap_in_place(state_dict: dict, scope: str) -> None:
    """Expands a whole checkpoint dict under ``scope`` and strips DataParallel's ``module.``."""
    for name in WRAPPERS:
        inner = state_dict.get(scope + name)
        if isinstance(inner, dict):
            for key in [k for k in state_dict if k.startswith(scope)]:
                if not isinstance(state_dict[key], torch.Tensor):  # optimizer, meta, epoch
                    del state_dict[key]
            state_dict.update({scope + k: v for k, v in inner.items()})
            break
    keys = [k for k in state_dict if k.startswith(scope)]
    wrapped = scope + 'module.'
    if keys and all(k.startswith(wrapped) for k in keys):
        for key in keys:
            state_dict[scope + key[len(wrapped):]] = state_dict.pop(key)


def _layout_name(sub: StateDict, family: str) -> str:
    try:
        return detect_layout(sub)[0]
    except CheckpointError:  # backbone names alone, without the heads that tell the fork
        return family


def _source_keys(sub: StateDict, inner: str, roots: set) -> List[str]:
    """The backbone's keys in ``sub``: those under ``inner``, or, for un-prefixed weights, those
    whose first name is one of the backbone's (the official classifier's head is not)."""
    if inner:
        return [k for k in sub if k.startswith(inner)]
    return [k for k in sub if k.split('.', 1)[0] in roots]


def _map_backbone(state_dict: dict, scope: str, target: str, backbone: HRFormer,
                  parent: Optional[torch.nn.Module] = None) -> Optional[str]:
    """Rewrites in place the HRFormer weights under ``scope`` to this package's names under
    ``target``, and an official checkpoint's heads to the names of the host model ``parent``
    (the module at ``scope``, when it holds the backbone). Returns the layout found, or None
    when there is no HRFormer to map."""
    _unwrap_in_place(state_dict, scope)
    sub = {k[len(scope):]: v for k, v in state_dict.items() if k.startswith(scope)}
    rel = target[len(scope):]
    found = find_backbones(sub)
    at_target = [f for f in found if f[1] == rel]
    if not at_target and len(found) != 1:
        return None  # none, or several elsewhere: nothing to choose from
    family, inner = (at_target or found)[0]
    expected = backbone.state_dict()
    roots = {k.split('.', 1)[0] for k in expected}
    source = _source_keys(sub, inner, roots)
    layout = _layout_name(sub, family)

    mapped = BACKBONE_NAMES[family]({k[len(inner):]: sub[k] for k in source})
    # Weights of parts this model does not build: bias tables without RPE (the official pose
    # code never used them), last fusions of branches it does not return.
    with_rpe = any(k.endswith(TABLE) for k in expected)
    unused = [k for k in mapped if k not in expected and (
        (k.endswith(TABLE) and not with_rpe) or UNUSED_FUSION.match(k))]
    tables_given = any(k.endswith(TABLE) for k in mapped)
    mapped = {k: v for k, v in mapped.items() if k not in unused}
    head_state: StateDict = {}
    head_used: List[str] = []
    notes: tuple = ()
    _warn_about_settings(layout, sub, tables_given, backbone, parent)
    if parent is not None and layout == 'official-seg':
        try:
            heads = official_seg_heads(sub, False)
        except CheckpointError as err:
            raise CheckpointError(f'{err}: the OCR heads cannot be mapped on load; '
                                  f'{CONVERT_HINT}') from None
        head_state, head_used, notes = heads.state, heads.used, heads.notes
    elif layout == 'official-cls' and isinstance(getattr(parent, 'neck', None),
                                                 HRFormerClsNeck):  # an ImageClassifier
        head_state = official_cls_head(sub)
        head_used = [k for k in sub if k.startswith(OFFICIAL_CLS_HEAD_PREFIXES)]
    if family == 'mmhrformer' and inner == rel and not unused and not head_used and all(
            not k.endswith(INDEX) for k in source):
        return layout  # already this package's names where the model looks
    for key in source + head_used:
        del state_dict[scope + key]
    state_dict.update({target + k: v for k, v in mapped.items()})
    state_dict.update({scope + k: v for k, v in head_state.items()})
    if family != 'mmhrformer' or unused:
        what = f', {len(head_state)} head keys' if head_state else ''
        dropped = f'; dropped {len(unused)} of parts this model does not build' if unused else ''
        where = f' at {target!r}' if target else ''
        _logger().info(f'HRFormer{where}: {layout} weights mapped to this package\'s names '
                       f'({len(mapped)} backbone keys{what}){dropped}')
    heads = getattr(parent, 'decode_head', None)
    heads = heads if isinstance(heads, torch.nn.ModuleList) else [heads]
    if notes and not all(getattr(h, 'align_corners', True) for h in heads):
        for note in notes:  # what the config needs for the source's exact outputs
            _logger().warning(f'HRFormer: {note}')
    return layout


# Set while a command's checked load runs: it refuses other settings itself (checked.py).
_CALLER_CHECKS_SETTINGS = contextvars.ContextVar('caller_checks_settings', default=False)


@contextlib.contextmanager
def settings_checked_by_caller():
    """Leaves the settings warning to the caller, which refuses instead."""
    token = _CALLER_CHECKS_SETTINGS.set(True)
    try:
        yield
    finally:
        _CALLER_CHECKS_SETTINGS.reset(token)


def _warn_about_settings(layout: str, keys, tables_given: bool, backbone: HRFormer,
                         parent: Optional[torch.nn.Module]) -> None:
    """One warning where the model's settings differ from those its weights were trained with
    (:mod:`.settings`): a host's tool may be fine-tuning on purpose, so the load goes on."""
    if _CALLER_CHECKS_SETTINGS.get():
        return
    if layout in LAYOUTS:
        needs = needs_of_layout(layout, keys)
    elif tables_given:  # this package's names: the tables say the weights had the bias
        needs = Needs(SOURCES['mmhrformer'], 'mmhrformer', dict(with_rpe=True))
    else:
        return
    configured = model_settings(parent) if parent is not None else backbone_settings(backbone)
    warning = settings_warning(needs, configured)
    if warning:
        _logger().warning(f'HRFormer: {warning}')


def arch_name(settings: dict) -> str:
    """T / S / B for a preset's settings, else 'custom'."""
    for name, preset in ARCH_ZOO.items():
        if all(tuple(preset[k]) == tuple(settings[k]) for k in preset):
            return name
    return 'custom'


def _fits(value: torch.Tensor, param: torch.Tensor, key: str) -> bool:
    if key.endswith(TABLE):  # another window: the attention module resizes the table per head
        return value.dim() == 2 and value.shape[1] == param.shape[1]
    return value.shape == param.shape


def adapt_backbone_state(backbone: HRFormer, state_dict: dict, prefix: str) -> None:
    """Called by ``HRFormer._load_from_state_dict``: maps the weights under ``prefix`` to this
    package's names, in place, then checks that they set every parameter and buffer of the
    backbone with the right shapes.

    Raises:
        CheckpointError: one line naming the layout found (or that there is no HRFormer), the
            arch the shapes say against the configured one, and a few missing keys.
    """
    mapped_from = backbone.__dict__.pop('_mapped_from', None)  # by the host model's pre-hook
    layout = _map_backbone(state_dict, prefix, prefix, backbone)
    layout = mapped_from or layout
    expected = backbone.state_dict()
    given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    missing = [k for k in expected if k not in given and not k.endswith('num_batches_tracked')]
    misfit = [f'{k} {tuple(given[k].shape)} vs {tuple(v.shape)}' for k, v in expected.items()
              if k in given and isinstance(given[k], torch.Tensor) and not _fits(given[k], v, k)]
    if not missing and not misfit:
        return
    configured = arch_name(backbone.arch_settings)
    if layout is None:
        source = f'no HRFormer layout (first keys: {name_keys(list(given)[:3], 3) or "none"})'
        arch = ''
    else:
        try:
            arch = f'; its shapes say HRFormer-{backbone_arch(given)[0]}, '
        except CheckpointError:
            arch = '; its shapes match no HRFormer arch, '
        arch += f'the config builds HRFormer-{configured}'
        source = f'{layout} layout'
    where = f' at {prefix!r}' if prefix else ''
    problems = []
    if missing:
        problems.append(f'{len(missing)} of {len(expected)} backbone keys missing: '
                        f'{name_keys(missing, 3)}')
    if misfit:
        problems.append(f'{len(misfit)} shapes do not fit: {name_keys(misfit, 2)}')
    raise CheckpointError(f'HRFormer{where} cannot take these weights ({source}{arch}): '
                          + '; '.join(problems))


def adapt_whole_checkpoint(parent: torch.nn.Module, state_dict: dict, prefix: str, *args,
                           name: str) -> None:
    """Load pre-hook of a module whose child ``name`` is an HRFormer: maps a whole checkpoint
    (backbone and heads) in place before the module and its children take their keys."""
    child = parent._modules.get(name)
    if isinstance(child, HRFormer):
        layout = _map_backbone(state_dict, prefix, f'{prefix}{name}.', child, parent)
        if layout is not None and layout != 'mmhrformer':
            # The backbone then sees its own names; its errors name the file's layout.
            child.__dict__['_mapped_from'] = layout


def _watch_registration(parent: torch.nn.Module, name: str, child) -> None:
    # Hosts assign the backbone as an attribute (``self.backbone = MODELS.build(...)``): that is
    # where a whole checkpoint's heads and un-prefixed keys can still be seen.
    if isinstance(child, HRFormer):
        parent.register_load_state_dict_pre_hook(
            functools.partial(adapt_whole_checkpoint, name=name))


def load_pretrained(backbone: HRFormer, checkpoint: str, prefix: Optional[str] = None,
                    map_location: str = 'cpu', **_) -> None:
    """``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` of the backbone: any
    known layout, or the backbone of any whole checkpoint of one; stops on anything else.

    ``prefix`` picks the backbone among the checkpoint's keys when several could be it; where no
    key lies under it, the backbone is found from the keys.
    """
    if '://' in str(checkpoint):  # MMEngine's URL and open-mmlab:// schemes
        from mmengine.runner.checkpoint import CheckpointLoader
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
    else:
        loaded = read_checkpoint(str(checkpoint), unsafe_hint=f'if you trust it, {CONVERT_HINT} '
                                 'with --unsafe-load and name DST in init_cfg')
    state = state_dict_of(loaded, checkpoint)
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        under = strip(state, prefix)
        if under:
            state = under
        else:
            _logger().info(f'HRFormer: no key of {checkpoint} under prefix {prefix!r}; the '
                           'backbone is found from the keys')
    try:
        result = backbone.load_state_dict(state, strict=False)
    except CheckpointError as err:
        raise CheckpointError(f'{checkpoint}: {err}') from None
    _logger().info(f'HRFormer: loaded {checkpoint}'
                   + (f' ({len(result.unexpected_keys)} keys of other modules ignored)'
                      if result.unexpected_keys else ''))


class LayoutAdapter:
    """What :attr:`HRFormer.weights_adapter` calls: this module's mapping and checks."""
    adapt_state = staticmethod(adapt_backbone_state)
    load_pretrained = staticmethod(load_pretrained)


_installed = False


def install() -> None:
    """Plugs the layout mapping into the models; ``import mmhrformer`` calls it once.

    The backbone's own loads go through :class:`LayoutAdapter`. Whole official checkpoints also
    hold heads that only the module around the backbone is handed (torch and MMEngine give each
    module the keys under its own prefix), and that module is a host's (``EncoderDecoder``,
    ``TopdownPoseEstimator``, ``ImageClassifier``), not ours: torch's process-wide
    module-registration hook is the one place that sees an HRFormer become a host model's child,
    so it gives that host model a load pre-hook. Its cost outside this package is one
    ``isinstance`` per submodule assignment.
    """
    global _installed
    if _installed:
        return
    HRFormer.weights_adapter = LayoutAdapter
    register_module_module_registration_hook(_watch_registration)
    _installed = True
