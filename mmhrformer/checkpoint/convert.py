"""Official and MMPose HRFormer checkpoints to this package's layout, with identical outputs.

Used by ``tools/model_converters/hrformer2mmseg.py`` (console script ``hrformer2mmseg``). The
layout rules live in :mod:`mmhrformer.checkpoint.layouts`; this module runs them and checks the
result. Every source key is accounted for: mapped, or dropped for a stated reason
(``meta['dropped']``); anything else is an error. The result is then loaded strictly into the real
target model, built through its host's registry, so a missing, left-over or misshapen key is
reported by name.
"""
import importlib
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..layers import resize_rpe_table
from ..models.backbones.hrformer import ARCH_ALIASES, ARCH_ZOO, HRFormer
from .layouts import (INDEX, LAYOUTS, OFFICIAL_CLS_HEAD_PREFIXES, TABLE, TARGET_BACKBONE,
                      TARGET_CLASSIFIER, TARGET_POSE, TARGET_SEG, CheckpointError, StateDict,
                      detect_layout, name_keys, strip)
from .reading import unwrap

CONVERTER = 'tools/model_converters/hrformer2mmseg.py'


def backbone_arch(sd: StateDict) -> Tuple[str, object]:
    """(arch name, window size: an int, or 3 ints for stages 2-4) from a backbone in our layout."""
    probe = sd.get('stage2.0.branches.0.0.norm1.weight')
    width = None if probe is None else probe.shape[0]
    modules = len({k.split('.')[1] for k in sd if k.startswith('stage3.')})
    name = next((n for n, a in ARCH_ZOO.items()
                 if a['channels'][0] == width and a['num_modules'][1] == modules), None)
    if name is None:
        raise CheckpointError(f'the backbone matches no HRFormer arch (branch-0 width {width}, '
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
    """Converts a loaded checkpoint; returns (state dict, meta). Raises :class:`CheckpointError`.

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
    layout_name, prefix = detect_layout(sd)
    if layout_name == 'mmhrformer':
        raise CheckpointError('already in this package\'s layout: use it as it is (init_cfg, '
                              'load_from), no conversion needed')
    layout = LAYOUTS[layout_name]
    if full_classifier and layout_name != 'official-cls':
        raise CheckpointError(f'--full-classifier needs an official classification checkpoint, '
                              f'this is {layout_name}')
    if arch is not None:
        arch = ARCH_ALIASES.get(arch.lower(), arch.lower())

    # Backbone: everything under the prefix (no prefix: everything but the cls head).
    source_backbone = [k for k in sd if k.startswith(prefix)] if prefix else [
        k for k in sd if not k.startswith(OFFICIAL_CLS_HEAD_PREFIXES)]
    heads = layout.heads(sd, full_classifier)
    dropped: Dict[str, List[str]] = dict(heads.dropped)

    def drop(reason: str, keys: Sequence[str]) -> None:
        if keys:
            dropped.setdefault(reason, []).extend(keys)

    drop('relative_position_index (rebuilt by the model)',
         [k for k in source_backbone if k.endswith(INDEX)])
    leftover = set(sd) - set(source_backbone) - set(heads.used) - {
        k for keys in dropped.values() for k in keys}
    if leftover:
        raise CheckpointError(f'{len(leftover)} keys left over, part of no known {layout_name} '
                              f'module: {name_keys(leftover)}')
    backbone = layout.backbone({k[len(prefix):]: sd[k] for k in source_backbone})
    settings = {**layout.settings, **heads.settings}

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
        raise CheckpointError(f'asked for HRFormer-{arch} (--arch), the checkpoint holds an '
                              f'HRFormer of another arch: {found_arch}')
    if window_size is not None:
        if window_size < 1:
            raise CheckpointError(f'window size must be positive, got {window_size}')
        backbone = {k: resize_rpe_table(v, window_size) if k.endswith(TABLE) else v
                    for k, v in backbone.items()}
        window = window_size
    settings.update(arch=found_arch, window_size=window)

    state = backbone if heads.target == TARGET_BACKBONE else {
        **{f'backbone.{k}': v for k, v in backbone.items()}, **heads.state}
    check_strict(build_target(heads.target, settings, heads.state), state)
    meta = dict(source_layout=layout_name, target=heads.target, model_settings=settings,
                source_keys=source_keys, output_keys=len(state),
                dropped={reason: len(keys) for reason, keys in dropped.items()},
                notes=list(heads.notes), converter=CONVERTER)
    if layout.preprocessing:
        meta['data_preprocessor'] = dict(layout.preprocessing)
    dataset = dataset_meta(heads.target, heads.state)
    if dataset is not None:
        meta['dataset_meta'] = dataset
    return state, meta


# Official seg checkpoints: classes -> the data set they were trained on (MMSeg dataset types).
SEG_DATASETS = {19: 'CityscapesDataset', 150: 'ADE20KDataset', 59: 'PascalContextDataset59',
                171: 'COCOStuffDataset'}


def dataset_meta(target: str, head: StateDict) -> Optional[dict]:
    """Class names (and palette, keypoint metainfo) of the data set a converted model predicts,
    as the hosts' own training checkpoints carry them in ``meta['dataset_meta']``, so that the
    hosts' inferencers label their outputs right. None where the head tells no known data set."""
    if target == TARGET_SEG:
        name = SEG_DATASETS.get(head['decode_head.1.conv_seg.weight'].shape[0])
        if name is None:
            return None
        import mmseg.datasets  # noqa: F401  (registers the dataset types)
        from mmseg.registry import DATASETS
        metainfo = DATASETS.get(name).METAINFO
        return dict(classes=tuple(metainfo['classes']), palette=list(metainfo['palette']))
    if target == TARGET_POSE:
        if head['head.final_layer.weight'].shape[0] != 17:
            return None
        from mmpose.datasets.datasets.utils import parse_pose_metainfo
        return parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py'))
    if target == TARGET_CLASSIFIER:
        if head['head.fc.weight'].shape[0] != 1000:
            return None
        from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
        return dict(classes=tuple(IMAGENET_CATEGORIES))
    return None


def build_in_host(host: str, cfg: dict) -> torch.nn.Module:
    """Builds ``cfg`` from ``host``'s registry, whatever default scope the caller has set."""
    from mmengine.registry import DefaultScope
    importlib.import_module(f'{host}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{host}.registry').MODELS
    with DefaultScope.overwrite_default_scope(host):
        return registry.build(cfg)


def ocrnet_cfg(backbone: dict, num_classes: int, channels: Sequence[int], head_channels: int = 512,
               ocr_channels: int = 256, align_corners: bool = True) -> dict:
    """openseg's HRT OCR V2 as an MMSeg ``CascadeEncoderDecoder`` (aux FCNHead, OCRHead) without
    dropout and with MMSeg's default losses; ``channels`` are the backbone's branch widths,
    ``align_corners`` openseg's resizing. The training recipes (OHEM, loss weights, SyncBN) are
    in ``configs/_base_``."""
    common = dict(in_channels=list(channels), in_index=(0, 1, 2, 3),
                  input_transform='resize_concat', num_classes=num_classes,
                  norm_cfg=dict(type='BN', requires_grad=True), align_corners=align_corners)
    return dict(
        type='CascadeEncoderDecoder', num_stages=2, backbone=backbone,
        decode_head=[
            dict(type='FCNHead', channels=head_channels, kernel_size=3, num_convs=1,
                 concat_input=False, dropout_ratio=-1, **common),
            dict(type='OCRHead', channels=head_channels, ocr_channels=ocr_channels,
                 dropout_ratio=-1, **common),
        ],
        test_cfg=dict(mode='whole'))


def build_target(target: str, settings: dict, head: StateDict) -> torch.nn.Module:
    """The real model the converted weights are for, built through its host's registry."""
    backbone = dict(arch=settings['arch'], window_size=settings['window_size'],
                    with_rpe=settings['with_rpe'], upsample_mode=settings['upsample_mode'],
                    out_indices=settings.get('out_indices', (0, 1, 2, 3)))
    if target == TARGET_BACKBONE:
        return HRFormer(**backbone)
    backbone['type'] = 'mmhrformer.HRFormer'
    channels = ARCH_ZOO[settings['arch']]['channels']
    if target == TARGET_SEG:
        num_classes = head['decode_head.1.conv_seg.weight'].shape[0]
        return build_in_host('mmseg', ocrnet_cfg(backbone, num_classes, channels))
    if target == TARGET_POSE:
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
        raise CheckpointError(f'{len(missing)} keys missing for the target model: '
                              f'{name_keys(missing)}')
    if extra:
        raise CheckpointError(f'{len(extra)} keys left over, unknown to the target model: '
                              f'{name_keys(extra)}')
    bad = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)} expected'
           for k, v in expected.items() if state[k].shape != v.shape]
    if bad:
        raise CheckpointError(f'{len(bad)} shapes do not fit: {name_keys(bad, 3)}')
    model.load_state_dict(state, strict=True)
