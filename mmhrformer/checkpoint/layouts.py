"""Every checkpoint layout this package reads, and the rules that map it to its own names.

Layouts, told apart by their keys (:func:`detect_layout`):

* ``official-cls``: HRNet/HRFormer ``cls/`` (``{'model': state_dict}``, no prefix): the backbone,
  then the head ``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``.
* ``official-seg``: openseg.pytorch ``HRT_*_OCR_V2`` (``module.backbone.*``, ``conv3x3``,
  ``ocr_distri_head``, ``cls_head``, ``aux_head``) -> MMSeg's ``CascadeEncoderDecoder`` (FCNHead
  aux, OCRHead). openseg's head convs carry a bias before their BN and MMSeg's ``ConvModule`` has
  none; it folds exactly: ``bn(conv(x) + b) == bn'(conv(x))`` with ``running_mean' =
  running_mean - b``.
* ``official-pose``: HRNet/HRFormer ``pose/`` (mmpose 0.x fork: ``backbone.*``,
  ``keypoint_head.final_layer``) -> MMPose 1.x ``TopdownPoseEstimator`` + ``HeatmapHead``. That
  code never added the relative position bias (HRFormer issue #32).
* ``mmpose``: MMPose 1.x's own HRFormer (fused ``attn.attn.qkv`` rows q;k;v, ``attn.attn.proj``),
  with or without ``backbone.`` and a heatmap head.
* ``mmhrformer``: this package's own names (what the converter writes and training saves).

Official backbone names equal this package's but for two renames (``attn.attn.`` -> ``attn.``,
``mlp.`` -> ``ffn.``); ``relative_position_index`` buffers are derived and never stored.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import torch

from ..models.backbones.hrformer import ARCH_ZOO

StateDict = Dict[str, torch.Tensor]

TABLE = 'relative_position_bias_table'
INDEX = 'relative_position_index'
OFFICIAL_RENAMES = (('.attn.attn.', '.attn.'), ('.mlp.', '.ffn.'))
# The official classification head -> its place in an MMPretrain ImageClassifier.
OFFICIAL_CLS_HEAD_RENAMES = (
    ('incre_modules.', 'neck.incre_modules.'),
    ('downsamp_modules.', 'neck.downsamp_modules.'),
    ('final_layer.', 'neck.final_layer.'),
    ('classifier.', 'head.fc.'),
)
OFFICIAL_CLS_HEAD_PREFIXES = tuple(old for old, _ in OFFICIAL_CLS_HEAD_RENAMES)
# One key every HRFormer backbone has, in each family of names (official forks, MMPose 1.x, ours).
PROBES = {
    'official': 'stage2.0.branches.0.0.attn.attn.q_proj.weight',
    'mmpose': 'stage2.0.branches.0.0.attn.attn.qkv.weight',
    'mmhrformer': 'stage2.0.branches.0.0.attn.q_proj.weight',
}
POSE_HEAD_PREFIXES = ('keypoint_head.final_layer.', 'head.final_layer.')  # mmpose 0.x, 1.x

# openseg conv (its BNReLU = Sequential(BN, ReLU) at the next index) -> MMSeg ConvModule.
OPENSEG_CONVS = {
    'conv3x3.0': 'decode_head.1.bottleneck',
    'ocr_distri_head.object_context_block.f_pixel.0':
    'decode_head.1.object_context_block.query_project.0',
    'ocr_distri_head.object_context_block.f_pixel.2':
    'decode_head.1.object_context_block.query_project.1',
    'ocr_distri_head.object_context_block.f_object.0':
    'decode_head.1.object_context_block.key_project.0',
    'ocr_distri_head.object_context_block.f_object.2':
    'decode_head.1.object_context_block.key_project.1',
    'ocr_distri_head.object_context_block.f_down.0':
    'decode_head.1.object_context_block.value_project',
    'ocr_distri_head.object_context_block.f_up.0': 'decode_head.1.object_context_block.out_project',
    'ocr_distri_head.conv_bn_dropout.0': 'decode_head.1.object_context_block.bottleneck',
    'aux_head.0': 'decode_head.0.convs.0',
}
OPENSEG_CLASSIFIERS = {'cls_head': 'decode_head.1.conv_seg', 'aux_head.2': 'decode_head.0.conv_seg'}
BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')

# What a config needs beyond the settings a layout states (Layout.settings, .preprocessing) to
# reproduce the source model's outputs.
SEG_NOTES = ('both decode heads need align_corners=True (openseg resized with it, in '
             'resize_concat and in the final upsampling)', )
# Targets: what the converted state dict is for.
TARGET_BACKBONE = 'HRFormer backbone'
TARGET_CLASSIFIER = 'mmpretrain ImageClassifier (HRFormer, HRFormerClsNeck, LinearClsHead)'
TARGET_SEG = 'mmseg CascadeEncoderDecoder (decode_head: FCNHead aux, OCRHead)'
TARGET_POSE = 'mmpose TopdownPoseEstimator (HeatmapHead, no deconvs)'


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, converted or loaded; the message (one line) names the
    problem and the keys."""


def name_keys(keys, limit: int = 5) -> str:
    """A few of ``keys``, sorted, then how many more."""
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f' (and {len(keys) - limit} more)' if len(keys) > limit else '')


def strip(sd: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


# ---- backbone names ----

def convert_official_backbone(state_dict: StateDict) -> StateDict:
    """An official HRFormer backbone state dict (no prefix) in this package's names.

    Classification-head keys and the derived ``relative_position_index`` buffers are dropped;
    everything else maps one to one.
    """
    converted = {}
    for key, value in state_dict.items():
        if key.startswith(OFFICIAL_CLS_HEAD_PREFIXES) or key.endswith(INDEX):
            continue
        for old, new in OFFICIAL_RENAMES:
            key = key.replace(old, new)
        converted[key] = value
    return converted


def mmpose_to_ours(sd: StateDict) -> StateDict:
    """MMPose 1.x HRFormer names (fused ``qkv`` rows q;k;v, ``proj``) to this backbone's.

    The ``relative_position_index`` buffers are dropped (the model rebuilds them).
    """
    out = {}
    for key, value in sd.items():
        if key.endswith(INDEX):
            continue
        if '.attn.attn.qkv.' in key:
            if value.shape[0] % 3:
                raise CheckpointError(f'{key} of shape {tuple(value.shape)} does not split into '
                                      'q, k and v')
            for name, part in zip(('q_proj', 'k_proj', 'v_proj'), value.chunk(3)):
                out[key.replace('.attn.attn.qkv.', f'.attn.{name}.')] = part.clone()
            continue
        key = key.replace('.attn.attn.proj.', '.attn.out_proj.')
        out[key.replace('.attn.attn.', '.attn.')] = value
    return out


def own_names(sd: StateDict) -> StateDict:
    """This package's backbone names, without the derived ``relative_position_index`` buffers
    (older checkpoints of this package stored them)."""
    return {k: v for k, v in sd.items() if not k.endswith(INDEX)}


def convert_official_classifier(state_dict: StateDict) -> StateDict:
    """An official HRFormer ImageNet checkpoint in MMPretrain ``ImageClassifier`` names.

    The classifier is ``ImageClassifier(backbone=HRFormer, neck=HRFormerClsNeck,
    head=LinearClsHead(1000, 2048))``: backbone keys through :func:`convert_official_backbone`
    get ``backbone.``; ``incre_modules``, ``downsamp_modules`` and ``final_layer`` get ``neck.``;
    ``classifier`` becomes ``head.fc``.

    Args:
        state_dict (dict[str, Tensor]): The official model weights, no prefix (the ``'model'``
            entry of an official checkpoint; the whole checkpoint dict is accepted too).

    Returns:
        dict[str, Tensor]: Keys ``backbone.*``, ``neck.*`` and ``head.fc.*``.
    """
    if isinstance(state_dict.get('model'), dict):
        state_dict = state_dict['model']
    converted = {f'backbone.{k}': v for k, v in convert_official_backbone(state_dict).items()}
    converted.update(official_cls_head(state_dict))
    return converted


def mmpose_backbone_cfg(arch: str = 'small', with_rpe: bool = True,
                        upsample_mode: str = 'bilinear', multiscale_output: bool = True) -> dict:
    """MMPose 1.x's ``HRFormer`` config with the structure of this package's ``arch`` (window 7):
    the model the ``mmpose`` layout's checkpoints come from. ``multiscale_output=False`` fuses the
    last module into branch 0 only (its TopDown configs)."""
    settings = ARCH_ZOO[arch]
    upsample = dict(mode=upsample_mode,
                    align_corners=False if upsample_mode == 'bilinear' else None)
    extra = dict(drop_path_rate=0.0, with_rpe=with_rpe, upsample=upsample,
                 stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(2, ),
                             num_channels=(64, )))
    for s, modules in enumerate(settings['num_modules']):
        n = s + 2
        extra[f'stage{n}'] = dict(num_modules=modules, num_branches=n, block='HRFORMERBLOCK',
                                  window_sizes=(7, ) * n, num_heads=settings['num_heads'][:n],
                                  mlp_ratios=(4, ) * n, num_blocks=(2, ) * n,
                                  num_channels=settings['channels'][:n],
                                  multiscale_output=multiscale_output or n < 4)
    return dict(type='HRFormer', extra=extra, norm_cfg=dict(type='BN'))


# ---- heads ----

@dataclass
class Heads:
    """What a layout's head rule gives: the target, its head weights (target names), the source
    keys they came from, keys dropped with a reason, notes for the config, and backbone settings
    the head implies."""
    target: str
    state: StateDict = field(default_factory=dict)
    used: List[str] = field(default_factory=list)
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()
    settings: dict = field(default_factory=dict)


def official_cls_head(sd: StateDict) -> StateDict:
    """The official classification head's weights under their ImageClassifier names."""
    out = {}
    for key, value in sd.items():
        for old, new in OFFICIAL_CLS_HEAD_RENAMES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
    return out


def official_cls_heads(sd: StateDict, full_classifier: bool) -> Heads:
    head_keys = [k for k in sd if k.startswith(OFFICIAL_CLS_HEAD_PREFIXES)]
    if full_classifier:
        return Heads(TARGET_CLASSIFIER, official_cls_head(sd), head_keys)
    return Heads(TARGET_BACKBONE, dropped={'classification head': head_keys})


def fold_conv_bias(sd: StateDict, conv: str, dst: str) -> Tuple[StateDict, List[str]]:
    """openseg ``conv`` (bias optional) + its BNReLU -> MMSeg ``ConvModule`` ``dst`` (no bias).

    Returns (mapped weights, source keys used). The bias moves into the BN's running mean:
    ``(conv(x) + b - mean) * s == (conv(x) - (mean - b)) * s``, so the outputs are identical.
    """
    head, index = conv.rsplit('.', 1)
    bn = f'{head}.{int(index) + 1}.0'  # BNReLU = Sequential(BatchNorm2d, ReLU)
    needed = [f'{conv}.weight'] + [f'{bn}.{k}' for k in BN_KEYS]
    absent = [k for k in needed if k not in sd]
    if absent:
        raise CheckpointError(f'official seg checkpoint lacks {len(absent)} head keys: '
                              f'{name_keys(absent)}')
    out = {f'{dst}.conv.weight': sd[f'{conv}.weight']}
    out.update({f'{dst}.bn.{k}': sd[f'{bn}.{k}'] for k in BN_KEYS})
    if f'{conv}.bias' in sd:
        needed.append(f'{conv}.bias')
        out[f'{dst}.bn.running_mean'] = sd[f'{bn}.running_mean'] - sd[f'{conv}.bias']
    return out, needed


def official_seg_heads(sd: StateDict, full_classifier: bool) -> Heads:
    """openseg OCR + aux heads (no ``module.``) -> MMSeg ``decode_head``."""
    weight = sd.get('conv3x3.0.weight')
    if weight is not None and weight.dim() == 4 and weight.shape[-1] != 3:
        raise CheckpointError(
            f'conv3x3.0.weight has a {weight.shape[-2]}x{weight.shape[-1]} kernel: the openseg '
            '"V3" OCR head (grouped 7x7 convs) has no MMSeg equivalent; only V2 converts')
    heads = Heads(TARGET_SEG, notes=SEG_NOTES)
    for conv, dst in OPENSEG_CONVS.items():
        mapped, keys = fold_conv_bias(sd, conv, dst)
        heads.state.update(mapped)
        heads.used += keys
    for src, dst in OPENSEG_CLASSIFIERS.items():
        for k in ('weight', 'bias'):
            if f'{src}.{k}' not in sd:
                raise CheckpointError(f'official seg checkpoint lacks the classifier {src}.{k}')
            heads.state[f'{dst}.{k}'] = sd[f'{src}.{k}']
            heads.used.append(f'{src}.{k}')
    return heads


def pose_heads(sd: StateDict, full_classifier: bool) -> Heads:
    """A 1x1 heatmap head (mmpose 0.x ``keypoint_head.`` or 1.x ``head.``) -> ``HeatmapHead``;
    without one, a bare MMPose backbone."""
    if not any(k.startswith(('head.', 'keypoint_head.')) for k in sd):
        return Heads(TARGET_BACKBONE)
    prefix = next((p for p in POSE_HEAD_PREFIXES if f'{p}weight' in sd), None)
    if prefix is None:
        raise CheckpointError('the pose head has no final_layer.weight (expected '
                              'keypoint_head.final_layer.* or head.final_layer.*)')
    used = [f'{prefix}{k}' for k in ('weight', 'bias') if f'{prefix}{k}' in sd]
    state = {k.replace(prefix, 'head.final_layer.', 1): sd[k] for k in used}
    return Heads(TARGET_POSE, state, used, settings=dict(out_indices=(0, )))


def official_pose_heads(sd: StateDict, full_classifier: bool) -> Heads:
    return pose_heads(sd, full_classifier)


# ---- the table ----

@dataclass(frozen=True)
class Layout:
    """A checkpoint layout: how its backbone names map to ours, how its heads convert, the
    backbone settings its weights were trained with (those that change outputs, not shapes,
    are checked against the model: :mod:`.settings`) and the data preprocessing they saw."""
    backbone: Callable[[StateDict], StateDict]
    heads: Callable[[StateDict, bool], Heads]
    settings: dict
    preprocessing: dict = field(default_factory=dict)


LAYOUTS = {
    'official-cls': Layout(convert_official_backbone, official_cls_heads,
                           dict(with_rpe=True, upsample_mode='nearest')),
    # openseg fed BGR images normalised with RGB-ordered mean / std.
    'official-seg': Layout(convert_official_backbone, official_seg_heads,
                           dict(with_rpe=True, upsample_mode='nearest'), dict(bgr_to_rgb=False)),
    # The official pose code never added the relative position bias (HRFormer issue #32).
    'official-pose': Layout(convert_official_backbone, official_pose_heads,
                            dict(with_rpe=False, upsample_mode='bilinear')),
    'mmpose': Layout(mmpose_to_ours, pose_heads, dict(with_rpe=True, upsample_mode='bilinear')),
}
# The backbone mapping of each family of names (find_backbones), whatever the heads.
BACKBONE_NAMES = {'official': convert_official_backbone, 'mmpose': mmpose_to_ours,
                  'mmhrformer': own_names}


def find_backbones(sd: StateDict) -> List[Tuple[str, str]]:
    """Every HRFormer backbone in ``sd``: (family of names, key prefix) per backbone found."""
    return [(family, k[:-len(probe)]) for k in sd for family, probe in PROBES.items()
            if k.endswith(probe) and (k == probe or k[-len(probe) - 1] == '.')]


def detect_layout(sd: StateDict) -> Tuple[str, str]:
    """(layout, backbone key prefix) of a state dict whose DataParallel ``module.`` is stripped."""
    keys = list(sd)
    found = find_backbones(sd)
    if len(found) != 1:
        raise CheckpointError(
            'not an HRFormer checkpoint of a known layout (official cls / seg / pose, MMPose 1.x '
            f'or mmhrformer): {len(found)} HRFormer backbones found (keys ending with '
            f'{PROBES["official"]} or the like); first keys: {name_keys(keys[:5])}')
    family, prefix = found[0]
    if family == 'mmhrformer':
        return family, prefix
    if family == 'mmpose':
        if prefix not in ('', 'backbone.'):
            raise CheckpointError(f'MMPose HRFormer weights under an unknown prefix {prefix!r}')
        return 'mmpose', prefix
    if prefix == '':
        return 'official-cls', prefix
    if prefix == 'backbone.' and any(k.startswith(('ocr_distri_head.', 'conv3x3.')) for k in keys):
        return 'official-seg', prefix
    if prefix == 'backbone.' and any(k.startswith('keypoint_head.') for k in keys):
        return 'official-pose', prefix
    raise CheckpointError(
        f'official HRFormer backbone names under {prefix!r} without a known head: cannot tell the '
        'layout (expected no prefix (cls), backbone.* with an OCR head (seg) or with '
        'keypoint_head.* (pose))')
