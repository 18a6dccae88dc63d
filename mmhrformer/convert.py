"""Official and MMPose HRFormer checkpoints to this package's layout, with identical outputs.

Used by ``tools/model_converters/hrformer2mmseg.py``. Layouts, told apart by their keys:

* ``official-cls``: HRNet/HRFormer ``cls/`` (``{'model': state_dict}``, no prefix). Output: the
  backbone (no prefix, for ``init_cfg=dict(type='Pretrained', checkpoint=...)``) or, with
  ``full_classifier``, an MMPretrain ``ImageClassifier`` (``backbone``, ``HRFormerClsNeck``,
  ``LinearClsHead``).
* ``official-seg``: openseg.pytorch ``HRT_*_OCR_V2`` (``module.backbone.*``, ``conv3x3``,
  ``ocr_distri_head``, ``cls_head``, ``aux_head``). Output: MMSeg's ``CascadeEncoderDecoder`` with
  ``decode_head[0]`` an ``FCNHead`` (the aux head) and ``decode_head[1]`` an ``OCRHead``. openseg's
  head convs carry a bias before their BN and MMSeg's ``ConvModule`` has none; it folds exactly:
  ``bn(conv(x) + b) == bn'(conv(x))`` with ``running_mean' = running_mean - b``.
* ``official-pose``: HRNet/HRFormer ``pose/`` (mmpose 0.x fork: ``backbone.*``,
  ``keypoint_head.final_layer``). Output: MMPose 1.x ``TopdownPoseEstimator`` + ``HeatmapHead``
  (no deconvs, 1x1 final conv). That code never added the relative position bias: the tables are
  dropped and the model needs ``with_rpe=False, upsample_mode='bilinear'``.
* ``mmpose``: MMPose 1.x's own HRFormer (fused ``attn.attn.qkv`` rows q;k;v, ``attn.attn.proj``),
  with or without ``backbone.``; backbone output, or a ``TopdownPoseEstimator`` when a heatmap
  head (``head.final_layer`` or 0.x ``keypoint_head.final_layer``) comes with it.

Every source key is accounted for: mapped, or dropped for a stated reason (``meta['dropped']``);
anything else is an error. The result is then loaded strictly into the real target model, built
through its host's registry, so a missing, left-over or misshapen key is reported by name.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .hrformer import ARCH_ALIASES, ARCH_ZOO, HRFormer, convert_official_backbone, resize_rpe_table

StateDict = Dict[str, torch.Tensor]

PROBE_OFFICIAL = 'stage2.0.branches.0.0.attn.attn.q_proj.weight'
PROBE_MMPOSE = 'stage2.0.branches.0.0.attn.attn.qkv.weight'
CLS_HEAD_PREFIXES = ('incre_modules.', 'downsamp_modules.', 'final_layer.', 'classifier.')
TABLE = 'relative_position_bias_table'
INDEX = 'relative_position_index'

# Backbone settings each source layout was trained with.
LAYOUT_SETTINGS = {
    'official-cls': dict(with_rpe=True, upsample_mode='nearest'),
    'official-seg': dict(with_rpe=True, upsample_mode='nearest'),
    'official-pose': dict(with_rpe=False, upsample_mode='bilinear'),
    'mmpose': dict(with_rpe=True, upsample_mode='bilinear'),
}
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
# What a config needs beyond the backbone settings to reproduce the source model's outputs.
SEG_NOTES = (
    'both decode heads need align_corners=True (openseg resized with it, in resize_concat and '
    'in the final upsampling)',
    'openseg fed BGR images normalised with RGB-ordered mean/std: for its exact logits set '
    'data_preprocessor bgr_to_rgb=False with mean=[123.675, 116.28, 103.53], '
    'std=[58.395, 57.12, 57.375]',
)
POSE_NOTES = ('the official pose code never added the relative position bias (HRFormer issue '
              '#32): build the backbone with with_rpe=False, upsample_mode=\'bilinear\', '
              'out_indices=(0, )', )


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message names the problem and the keys."""


def name_keys(keys, limit: int = 5) -> str:
    """A few of ``keys``, sorted, then how many more."""
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f' (and {len(keys) - limit} more)' if len(keys) > limit else '')


def unwrap(checkpoint) -> StateDict:
    """The state dict inside a checkpoint: under 'state_dict' or 'model', or the dict itself."""
    if not isinstance(checkpoint, dict):
        raise ConversionError('not a state dict or checkpoint dict '
                              f'(got {type(checkpoint).__name__})')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError('no state dict of tensors found (looked under "state_dict", '
                              '"model" and the top level)')
    return dict(checkpoint)


def detect_layout(sd: StateDict) -> Tuple[str, str]:
    """(layout, backbone key prefix) of a state dict whose DataParallel ``module.`` is stripped."""
    keys = list(sd)
    official = [k[:-len(PROBE_OFFICIAL)] for k in keys if k.endswith(PROBE_OFFICIAL)]
    mmpose = [k[:-len(PROBE_MMPOSE)] for k in keys if k.endswith(PROBE_MMPOSE)]
    if len(official) + len(mmpose) != 1:
        raise ConversionError(
            'not an HRFormer checkpoint of a known layout (official cls / seg / pose or MMPose '
            f'1.x): {len(official) + len(mmpose)} keys end with {PROBE_OFFICIAL} or '
            f'{PROBE_MMPOSE}; first keys: {name_keys(keys[:5])}')
    if mmpose:
        if mmpose[0] not in ('', 'backbone.'):
            raise ConversionError(f'MMPose HRFormer weights under an unknown prefix {mmpose[0]!r}')
        return 'mmpose', mmpose[0]
    prefix = official[0]
    if prefix == '':
        return 'official-cls', prefix
    if prefix == 'backbone.' and any(k.startswith(('ocr_distri_head.', 'conv3x3.')) for k in keys):
        return 'official-seg', prefix
    if prefix == 'backbone.' and any(k.startswith('keypoint_head.') for k in keys):
        return 'official-pose', prefix
    raise ConversionError(
        f'official HRFormer backbone names under {prefix!r} without a known head: cannot tell the '
        'layout (expected no prefix (cls), backbone.* with an OCR head (seg) or with '
        'keypoint_head.* (pose))')


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
                raise ConversionError(f'{key} of shape {tuple(value.shape)} does not split into '
                                      'q, k and v')
            for name, part in zip(('q_proj', 'k_proj', 'v_proj'), value.chunk(3)):
                out[key.replace('.attn.attn.qkv.', f'.attn.{name}.')] = part.clone()
            continue
        key = key.replace('.attn.attn.proj.', '.attn.out_proj.')
        out[key.replace('.attn.attn.', '.attn.')] = value
    return out


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
        raise ConversionError(f'official seg checkpoint lacks {len(absent)} head keys: '
                              f'{name_keys(absent)}')
    out = {f'{dst}.conv.weight': sd[f'{conv}.weight']}
    out.update({f'{dst}.bn.{k}': sd[f'{bn}.{k}'] for k in BN_KEYS})
    if f'{conv}.bias' in sd:
        needed.append(f'{conv}.bias')
        out[f'{dst}.bn.running_mean'] = sd[f'{bn}.running_mean'] - sd[f'{conv}.bias']
    return out, needed


def convert_seg_heads(sd: StateDict) -> Tuple[StateDict, List[str]]:
    """openseg OCR + aux heads (no ``module.``) -> MMSeg ``decode_head``; (state, used keys)."""
    weight = sd.get('conv3x3.0.weight')
    if weight is not None and weight.dim() == 4 and weight.shape[-1] != 3:
        raise ConversionError(
            f'conv3x3.0.weight has a {weight.shape[-2]}x{weight.shape[-1]} kernel: the openseg '
            '"V3" OCR head (grouped 7x7 convs) has no MMSeg equivalent; only V2 converts')
    out, used = {}, []
    for conv, dst in OPENSEG_CONVS.items():
        mapped, keys = fold_conv_bias(sd, conv, dst)
        out.update(mapped)
        used += keys
    for src, dst in OPENSEG_CLASSIFIERS.items():
        for k in ('weight', 'bias'):
            if f'{src}.{k}' not in sd:
                raise ConversionError(f'official seg checkpoint lacks the classifier {src}.{k}')
            out[f'{dst}.{k}'] = sd[f'{src}.{k}']
            used.append(f'{src}.{k}')
    return out, used


def strip(sd: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def backbone_arch(sd: StateDict) -> Tuple[str, object]:
    """(arch name, window size: an int, or 3 ints for stages 2-4) from a backbone in our layout."""
    probe = sd.get('stage2.0.branches.0.0.norm1.weight')
    width = None if probe is None else probe.shape[0]
    modules = len({k.split('.')[1] for k in sd if k.startswith('stage3.')})
    name = next((n for n, a in ARCH_ZOO.items()
                 if a['channels'][0] == width and a['num_modules'][1] == modules), None)
    if name is None:
        raise ConversionError(f'the backbone matches no HRFormer arch (branch-0 width {width}, '
                              f'{modules} modules in stage 3; known: '
                              + ', '.join(f'{n} {a["channels"][0]}/{a["num_modules"][1]}'
                                          for n, a in ARCH_ZOO.items()) + ')')
    windows = []
    for stage in (2, 3, 4):
        table = next((v for k, v in sd.items()
                      if k.startswith(f'stage{stage}.') and k.endswith(TABLE)), None)
        windows.append(7 if table is None else (math.isqrt(table.shape[0]) + 1) // 2)
    return name, windows[0] if len(set(windows)) == 1 else tuple(windows)


def convert(checkpoint, full_classifier: bool = False, window_size: Optional[int] = None,
            arch: Optional[str] = None) -> Tuple[StateDict, dict]:
    """Converts a loaded checkpoint; returns (state dict, meta). Raises :class:`ConversionError`.

    Args:
        checkpoint: What ``torch.load`` gave: a checkpoint dict or a bare state dict.
        full_classifier (bool): Official cls only: the whole MMPretrain classifier.
        window_size (int, optional): Resize every bias table for this window.
        arch (str, optional): Fail unless the checkpoint holds this arch.
    """
    sd = unwrap(checkpoint)
    source_keys = len(sd)
    if all(k.startswith('module.') for k in sd):  # openseg saves the DataParallel wrapper
        sd = strip(sd, 'module.')
    layout, prefix = detect_layout(sd)
    if full_classifier and layout != 'official-cls':
        raise ConversionError(f'--full-classifier needs an official classification checkpoint, '
                              f'this is {layout}')
    if arch is not None:
        arch = ARCH_ALIASES.get(arch.lower(), arch.lower())
    settings = dict(LAYOUT_SETTINGS[layout])
    dropped: Dict[str, List[str]] = {}

    def drop(reason: str, keys: Sequence[str]) -> None:
        if keys:
            dropped.setdefault(reason, []).extend(keys)

    # Backbone: everything under the prefix (no prefix: everything but the cls head).
    if prefix:
        source_backbone = [k for k in sd if k.startswith(prefix)]
    else:
        source_backbone = [k for k in sd if not k.startswith(CLS_HEAD_PREFIXES)]
        if not full_classifier:
            drop('classification head', [k for k in sd if k.startswith(CLS_HEAD_PREFIXES)])
    drop('relative_position_index (rebuilt by the model)',
         [k for k in source_backbone if k.endswith(INDEX)])
    backbone = {k[len(prefix):]: sd[k] for k in source_backbone}
    backbone = (mmpose_to_ours(backbone) if layout == 'mmpose' else
                convert_official_backbone(backbone))

    # Heads.
    head: StateDict = {}
    used: List[str] = []
    notes: List[str] = []
    if layout == 'official-cls' and full_classifier:
        from .cls_neck import convert_official_classifier
        head = {k: v for k, v in convert_official_classifier(sd).items()
                if not k.startswith('backbone.')}
        used = [k for k in sd if k.startswith(CLS_HEAD_PREFIXES)]
        target = 'mmpretrain ImageClassifier (HRFormer, HRFormerClsNeck, LinearClsHead)'
    elif layout == 'official-seg':
        head, used = convert_seg_heads(sd)
        target = 'mmseg CascadeEncoderDecoder (decode_head: FCNHead aux, OCRHead)'
        notes += SEG_NOTES
    elif layout == 'official-pose' or any(
            k.startswith(('head.', 'keypoint_head.')) for k in sd if k not in source_backbone):
        head_prefix = next((p for p in ('keypoint_head.final_layer.', 'head.final_layer.')
                            if f'{p}weight' in sd), None)
        if head_prefix is None:
            raise ConversionError('the pose head has no final_layer.weight (expected '
                                  'keypoint_head.final_layer.* or head.final_layer.*)')
        used = [f'{head_prefix}{k}' for k in ('weight', 'bias') if f'{head_prefix}{k}' in sd]
        head = {k.replace(head_prefix, 'head.final_layer.', 1): sd[k] for k in used}
        target = 'mmpose TopdownPoseEstimator (HeatmapHead, no deconvs)'
        settings['out_indices'] = (0, )
        if layout == 'official-pose':
            notes += POSE_NOTES
    else:
        target = 'HRFormer backbone'

    leftover = set(sd) - set(source_backbone) - set(used) - {
        k for keys in dropped.values() for k in keys}
    if leftover:
        raise ConversionError(f'{len(leftover)} keys left over, part of no known {layout} '
                              f'module: {name_keys(leftover)}')

    if not settings['with_rpe']:
        tables = [k for k in backbone if k.endswith(TABLE)]
        drop('relative_position_bias_table (never used by the official pose code)', tables)
        backbone = {k: v for k, v in backbone.items() if k not in tables}
    elif not any(k.endswith(TABLE) for k in backbone):
        settings['with_rpe'] = False  # weights trained without the bias
    # A model returning branch 0 alone fuses the last module into branch 0 only (HRNet's
    # multiscale_output=False); other fuse layers, if saved, never reach its output.
    last = max((int(k.split('.')[1]) for k in backbone if k.startswith('stage4.')), default=None)
    if last is not None and not any(
            k.startswith(f'stage4.{last}.fuse_layers.1.') for k in backbone):
        settings['out_indices'] = (0, )
    if settings.get('out_indices') == (0, ):
        unused = [k for k in backbone if k.startswith(
            tuple(f'stage4.{last}.fuse_layers.{i}.' for i in (1, 2, 3)))]
        drop('last fuse layers of branches 1-3 (the model returns branch 0)', unused)
        backbone = {k: v for k, v in backbone.items() if k not in unused}

    found_arch, window = backbone_arch(backbone)
    if arch is not None and arch != found_arch:
        raise ConversionError(f'asked for HRFormer-{arch} (--arch), the checkpoint holds an '
                              f'HRFormer of another arch: {found_arch}')
    if window_size is not None:
        if window_size < 1:
            raise ConversionError(f'window size must be positive, got {window_size}')
        backbone = {k: resize_rpe_table(v, window_size) if k.endswith(TABLE) else v
                    for k, v in backbone.items()}
        window = window_size
    settings.update(arch=found_arch, window_size=window)

    state = backbone if target == 'HRFormer backbone' else {
        **{f'backbone.{k}': v for k, v in backbone.items()}, **head}
    model = build_target(layout, target, settings, head)
    check_strict(model, state)
    meta = dict(source_layout=layout, target=target, model_settings=settings,
                source_keys=source_keys, output_keys=len(state),
                dropped={reason: len(keys) for reason, keys in dropped.items()},
                notes=notes, converter='tools/model_converters/hrformer2mmseg.py')
    return state, meta


def build_in_host(host: str, cfg: dict) -> torch.nn.Module:
    """Builds ``cfg`` from ``host``'s registry, whatever default scope the caller has set."""
    import importlib

    from mmengine.registry import DefaultScope
    importlib.import_module(f'{host}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{host}.registry').MODELS
    with DefaultScope.overwrite_default_scope(host):
        return registry.build(cfg)


def build_target(layout: str, target: str, settings: dict, head: StateDict) -> torch.nn.Module:
    """The real model the converted weights are for, built through its host's registry."""
    backbone = dict(type='mmhrformer.HRFormer', arch=settings['arch'],
                    window_size=settings['window_size'], with_rpe=settings['with_rpe'],
                    upsample_mode=settings['upsample_mode'],
                    out_indices=settings.get('out_indices', (0, 1, 2, 3)))
    channels = list(ARCH_ZOO[settings['arch']]['channels'])
    if target == 'HRFormer backbone':
        backbone.pop('type')
        return HRFormer(**backbone)
    if layout == 'official-seg':
        common = dict(in_channels=channels, in_index=(0, 1, 2, 3), input_transform='resize_concat',
                      num_classes=head['decode_head.1.conv_seg.weight'].shape[0],
                      norm_cfg=dict(type='BN', requires_grad=True), align_corners=True)
        return build_in_host('mmseg', dict(
            type='CascadeEncoderDecoder', num_stages=2, backbone=backbone,
            decode_head=[
                dict(type='FCNHead', channels=512, kernel_size=3, num_convs=1, concat_input=False,
                     dropout_ratio=-1, **common),
                dict(type='OCRHead', channels=512, ocr_channels=256, dropout_ratio=-1, **common),
            ]))
    if target.startswith('mmpose'):
        final = head['head.final_layer.weight']
        return build_in_host('mmpose', dict(
            type='TopdownPoseEstimator', backbone=backbone,
            head=dict(type='HeatmapHead', in_channels=channels[0], out_channels=final.shape[0],
                      deconv_out_channels=None, final_layer=dict(kernel_size=final.shape[-1]),
                      loss=dict(type='KeypointMSELoss'))))
    return build_in_host('mmpretrain', dict(
        type='ImageClassifier', backbone=backbone,
        neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=channels),
        head=dict(type='LinearClsHead', num_classes=head['head.fc.weight'].shape[0],
                  in_channels=head['head.fc.weight'].shape[1])))


def check_strict(model: torch.nn.Module, state: StateDict) -> None:
    """Loads ``state`` into ``model`` strictly; names missing, left-over and misshapen keys."""
    expected = model.state_dict()
    missing = set(expected) - set(state)
    extra = set(state) - set(expected)
    if missing:
        raise ConversionError(f'{len(missing)} keys missing for the target model: '
                              f'{name_keys(missing)}')
    if extra:
        raise ConversionError(f'{len(extra)} keys left over, unknown to the target model: '
                              f'{name_keys(extra)}')
    bad = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)} expected'
           for k, v in expected.items() if state[k].shape != v.shape]
    if bad:
        raise ConversionError(f'{len(bad)} shapes do not fit: {name_keys(bad, 3)}')
    model.load_state_dict(state, strict=True)
