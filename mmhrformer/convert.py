"""Official and MMPose HRFormer checkpoints to this package's layout, with identical outputs.

Layouts, told apart by their keys:

* ``official-cls``: HRNet/HRFormer ``cls/`` (``{'model': state_dict}``, no prefix): backbone
  weights, or with ``full_classifier`` an MMPretrain ``ImageClassifier`` (backbone, neck, head).
* ``official-seg``: openseg.pytorch OCRNet (``module.backbone.*``, ``conv3x3``, ``ocr_distri_head``,
  ``cls_head``, ``aux_head``) to MMSeg's ``CascadeEncoderDecoder`` with an ``FCNHead`` (aux) and an
  ``OCRHead``. openseg's head convs before a BN carry a bias and MMSeg's ``ConvModule`` has none:
  ``bn(conv(x) + b) == bn'(conv(x))`` with ``running_mean' = running_mean - b``, exactly.
* ``official-pose``: HRNet/HRFormer ``pose/`` (mmpose 0.x fork, ``backbone.*`` and
  ``keypoint_head.final_layer``) to MMPose 1.x's ``TopdownPoseEstimator`` + ``HeatmapHead``. That
  code never added the relative position bias: its tables are dropped and the model needs
  ``with_rpe=False, upsample_mode='bilinear'``.
* ``mmpose``: MMPose 1.x's HRFormer (fused ``qkv``, ``proj``) to this backbone.

Every conversion ends by loading the result strictly into the real target model, so a missing,
left-over or misshapen key is reported by name (:class:`ConversionError`).
"""
import math
from typing import Dict, Optional, Tuple

import torch

from .hrformer import ARCH_ZOO, HRFormer, convert_official_backbone, resize_rpe_table

StateDict = Dict[str, torch.Tensor]

# Backbone settings each source layout was trained with.
LAYOUT_SETTINGS = {
    'official-cls': dict(with_rpe=True, upsample_mode='nearest'),
    'official-seg': dict(with_rpe=True, upsample_mode='nearest'),
    'official-pose': dict(with_rpe=False, upsample_mode='bilinear'),
    'mmpose': dict(with_rpe=True, upsample_mode='bilinear'),
}
# openseg OCR head module -> MMSeg OCRHead / FCNHead module; each conv is followed by its BN.
OPENSEG_HEAD = {
    'conv3x3.0': 'decode_head.1.bottleneck',
    'ocr_distri_head.object_context_block.f_pixel.0': 'decode_head.1.object_context_block.query_project.0',
    'ocr_distri_head.object_context_block.f_pixel.2': 'decode_head.1.object_context_block.query_project.1',
    'ocr_distri_head.object_context_block.f_object.0': 'decode_head.1.object_context_block.key_project.0',
    'ocr_distri_head.object_context_block.f_object.2': 'decode_head.1.object_context_block.key_project.1',
    'ocr_distri_head.object_context_block.f_down.0': 'decode_head.1.object_context_block.value_project',
    'ocr_distri_head.object_context_block.f_up.0': 'decode_head.1.object_context_block.out_project',
    'ocr_distri_head.conv_bn_dropout.0': 'decode_head.1.object_context_block.bottleneck',
    'aux_head.0': 'decode_head.0.convs.0',
}
OPENSEG_CLASSIFIERS = {'cls_head': 'decode_head.1.conv_seg', 'aux_head.2': 'decode_head.0.conv_seg'}
BN_STATS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message names the problem and the keys."""


def name_keys(keys, limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f' (and {len(keys) - limit} more)' if len(keys) > limit else '')


def unwrap(checkpoint) -> StateDict:
    """The state dict inside a checkpoint: under 'model' or 'state_dict', or the dict itself."""
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'not a state dict or checkpoint dict (got {type(checkpoint).__name__})')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError('no state dict of tensors found (looked under "state_dict", '
                              '"model" and the top level)')
    return checkpoint


def detect_layout(sd: StateDict) -> str:
    keys = list(sd)
    if any(k.startswith('module.backbone.') for k in keys) and any('ocr_distri_head' in k for k in keys):
        return 'official-seg'
    if any('.attn.attn.qkv.' in k for k in keys):
        return 'mmpose'
    if any(k.startswith('keypoint_head.') for k in keys) and any('.attn.attn.q_proj.' in k for k in keys):
        return 'official-pose'
    if any(k.startswith('stage2.0.branches.') and '.attn.attn.q_proj.' in k for k in keys):
        return 'official-cls'
    raise ConversionError('not an HRFormer checkpoint of a known layout (official cls / seg / pose '
                          f'or MMPose 1.x); first keys: {name_keys(keys[:5])}')


def backbone_arch(sd: StateDict) -> Tuple[str, int]:
    """(arch name, window size) from the shapes of a backbone state dict in our layout."""
    probe = sd.get('stage2.0.branches.0.0.norm1.weight')
    width = None if probe is None else probe.shape[0]
    modules = len({k.split('.')[1] for k in sd if k.startswith('stage3.')})
    for name, arch in ARCH_ZOO.items():
        if arch['channels'][0] == width and arch['num_modules'][1] == modules:
            table = next((v for k, v in sd.items() if k.endswith('relative_position_bias_table')),
                         None)
            window = 7 if table is None else (math.isqrt(table.shape[0]) + 1) // 2
            return name, window
    raise ConversionError(f'backbone matches no HRFormer arch (branch-0 width {width}, '
                          f'{modules} modules in stage 3)')


def mmpose_to_ours(sd: StateDict) -> StateDict:
    """MMPose 1.x HRFormer names (fused ``qkv`` rows q;k;v, ``proj``) to this backbone's."""
    out = {}
    for key, value in sd.items():
        if key.endswith('relative_position_index'):
            continue
        if '.attn.attn.qkv.' in key:
            for name, part in zip(('q_proj', 'k_proj', 'v_proj'), value.chunk(3)):
                out[key.replace('.attn.attn.qkv.', f'.attn.{name}.')] = part
            continue
        out[key.replace('.attn.attn.proj.', '.attn.out_proj.').replace('.attn.attn.', '.attn.')] = value
    return out


def fold_conv_bias(sd: StateDict, src: str, dst: str) -> StateDict:
    """openseg ``src`` conv (optional bias) + ``src``-next BN -> MMSeg ``ConvModule`` ``dst``."""
    head, index = src.rsplit('.', 1)
    bn = f'{head}.{int(index) + 1}.0'  # BNReLU = Sequential(BatchNorm2d, ReLU)
    out = {f'{dst}.conv.weight': sd[f'{src}.weight']}
    for stat in BN_STATS:
        out[f'{dst}.bn.{stat}'] = sd[f'{bn}.{stat}']
    if f'{src}.bias' in sd:
        out[f'{dst}.bn.running_mean'] = sd[f'{bn}.running_mean'] - sd[f'{src}.bias']
    return out


def convert_seg_heads(sd: StateDict) -> StateDict:
    out = {}
    for src, dst in OPENSEG_HEAD.items():
        if f'{src}.weight' not in sd:
            raise ConversionError(f'official seg checkpoint lacks the head conv {src}.weight')
        out.update(fold_conv_bias(sd, src, dst))
    for src, dst in OPENSEG_CLASSIFIERS.items():
        out[f'{dst}.weight'], out[f'{dst}.bias'] = sd[f'{src}.weight'], sd[f'{src}.bias']
    return out


def strip(sd: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def convert(checkpoint, full_classifier: bool = False, window_size: Optional[int] = None,
            arch: Optional[str] = None) -> Tuple[StateDict, dict]:
    """Converts a loaded checkpoint; returns (state dict, meta). Raises :class:`ConversionError`."""
    sd = unwrap(checkpoint)
    layout = detect_layout(sd)
    if layout == 'official-seg':
        sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    backbone_prefix = {'official-cls': '', 'official-seg': 'backbone.', 'official-pose': 'backbone.',
                       'mmpose': 'backbone.' if any(k.startswith('backbone.') for k in sd) else ''}[layout]
    backbone = strip(sd, backbone_prefix) if backbone_prefix else {
        k: v for k, v in sd.items() if not k.startswith(('incre_modules.', 'downsamp_modules.',
                                                         'final_layer.', 'classifier.'))}
    backbone = mmpose_to_ours(backbone) if layout == 'mmpose' else convert_official_backbone(backbone)
    settings = dict(LAYOUT_SETTINGS[layout])
    if not settings['with_rpe']:
        backbone = {k: v for k, v in backbone.items() if not k.endswith('relative_position_bias_table')}
    # Pose models fuse the last stage into branch 0 alone (HRNet's multiscale_output=False).
    last = max(int(k.split('.')[1]) for k in backbone if k.startswith('stage4.'))
    single_output = layout == 'official-pose' or not any(
        k.startswith(f'stage4.{last}.fuse_layers.1.') for k in backbone)
    unused_fuse = [k for k in backbone if single_output and k.startswith(
        tuple(f'stage4.{last}.fuse_layers.{i}.' for i in (1, 2, 3)))]
    backbone = {k: v for k, v in backbone.items() if k not in unused_fuse}
    if single_output:
        settings['out_indices'] = (0, )
    found_arch, window = backbone_arch(backbone)
    if arch is not None and arch != found_arch:
        raise ConversionError(f'asked for HRFormer-{arch}, the checkpoint holds HRFormer-{found_arch}')
    if window_size is not None and window_size != window:
        backbone = {k: resize_rpe_table(v, window_size) if k.endswith('relative_position_bias_table')
                    else v for k, v in backbone.items()}
        window = window_size
    settings.update(arch=found_arch, window_size=window)

    if layout == 'official-cls' and full_classifier:
        from .cls_neck import convert_official_classifier
        state = convert_official_classifier(sd)
        state.update({f'backbone.{k}': v for k, v in backbone.items()})
        target = 'mmpretrain ImageClassifier'
    elif layout == 'official-seg':
        state = {f'backbone.{k}': v for k, v in backbone.items()}
        state.update(convert_seg_heads(sd))
        target = 'mmseg CascadeEncoderDecoder (FCNHead + OCRHead)'
    elif layout == 'official-pose':
        state = {f'backbone.{k}': v for k, v in backbone.items()}
        state.update({k.replace('keypoint_head.', 'head.', 1): v for k, v in sd.items()
                      if k.startswith('keypoint_head.final_layer.')})
        target = 'mmpose TopdownPoseEstimator (HeatmapHead)'
    else:
        state = backbone
        target = 'HRFormer backbone'
    model = build_target(layout, full_classifier and layout == 'official-cls', settings, sd)
    check_strict(model, state)
    dropped = {
        'relative_position_index (rebuilt by the model)':
        sum(k.endswith('relative_position_index') for k in sd),
        'relative_position_bias_table (unused by the official pose code)':
        sum(k.endswith('relative_position_bias_table') for k in sd) if not settings['with_rpe'] else 0,
        'fuse layers of branches 1-3 in the last module (pose models return branch 0)':
        len(unused_fuse),
        'classification head': 0 if full_classifier or layout != 'official-cls' else sum(
            k.startswith(('incre_modules.', 'downsamp_modules.', 'final_layer.', 'classifier.'))
            for k in sd),
    }
    meta = dict(source_layout=layout, target=target, model_settings=settings,
                source_keys=len(sd), output_keys=len(state),
                dropped={k: v for k, v in dropped.items() if v})
    return state, meta


def build_target(layout: str, full_classifier: bool, settings: dict, sd: StateDict):
    """The real model the converted weights are for, to load them into strictly."""
    arch = settings['arch']
    backbone = dict(arch=arch, window_size=settings['window_size'], with_rpe=settings['with_rpe'],
                    upsample_mode=settings['upsample_mode'],
                    out_indices=settings.get('out_indices', (0, 1, 2, 3)))
    channels = list(ARCH_ZOO[arch]['channels'])
    if layout == 'official-seg':
        from mmengine.config import ConfigDict
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        num_classes = sd['cls_head.weight'].shape[0]
        norm_cfg = dict(type='BN', requires_grad=True)
        common = dict(in_channels=channels, in_index=(0, 1, 2, 3), input_transform='resize_concat',
                      num_classes=num_classes, norm_cfg=norm_cfg, align_corners=True)
        return MODELS.build(ConfigDict(
            type='CascadeEncoderDecoder', num_stages=2,
            backbone=dict(type='mmhrformer.HRFormer', **backbone),
            decode_head=[
                dict(type='FCNHead', channels=512, kernel_size=3, num_convs=1, concat_input=False,
                     dropout_ratio=-1, **common),
                dict(type='OCRHead', channels=512, ocr_channels=256, dropout_ratio=-1, **common),
            ]))
    if layout == 'official-pose':
        from mmengine.config import ConfigDict
        from mmpose.registry import MODELS
        from mmpose.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        joints = sd['keypoint_head.final_layer.weight'].shape[0]
        return MODELS.build(ConfigDict(
            type='TopdownPoseEstimator',
            backbone=dict(type='mmhrformer.HRFormer', **backbone),
            head=dict(type='HeatmapHead', in_channels=channels[0], out_channels=joints,
                      deconv_out_channels=None, loss=dict(type='KeypointMSELoss'))))
    if full_classifier:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        return MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='mmhrformer.HRFormer', **backbone),
            neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=channels),
            head=dict(type='LinearClsHead', num_classes=sd['classifier.weight'].shape[0],
                      in_channels=2048)))
    return HRFormer(**backbone)


def check_strict(model: torch.nn.Module, state: StateDict) -> None:
    expected = model.state_dict()
    missing = set(expected) - set(state)
    extra = set(state) - set(expected)
    if missing:
        raise ConversionError(f'{len(missing)} keys missing for the target model: {name_keys(missing)}')
    if extra:
        raise ConversionError(f'{len(extra)} keys left over: {name_keys(extra)}')
    bad = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in expected.items()
           if state[k].shape != v.shape]
    if bad:
        raise ConversionError(f'{len(bad)} shapes do not fit: {name_keys(bad, 3)}')
    model.load_state_dict(state, strict=True)
