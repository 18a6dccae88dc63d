"""Every shipped config loads, builds its model through its host's registry, and runs a loss and a
predict step on a tiny input (CPU: SyncBN is reverted to BN, as MMEngine does without a GPU)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.model import revert_sync_batchnorm

from builders import cls_batch, pose_batch, seg_batch  # tests/builders.py
from mmhrformer.checkpoint.settings import SETTINGS_INDEX, config_settings, configs_fingerprint
from shared import shipped_config  # tests/shared.py

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts
                 and not p.name.startswith('_base'))


def build(cfg):
    import importlib
    scope = cfg.default_scope
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=True)
    import mmhrformer  # noqa: F401  (what custom_imports does)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = revert_sync_batchnorm(registry.build(cfg.model))
    return model


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[str(p.relative_to(ROOT / 'configs')) for p in CONFIGS])
def test_config_builds_and_steps(path):
    cfg = shipped_config(path)
    assert 'mmhrformer' in cfg.get('custom_imports', {}).get('imports', []), 'custom_imports'
    assert cfg.model.backbone.type in ('mmhrformer.HRFormer', 'HRFormer')
    torch.manual_seed(0)
    model = build(cfg)
    from mmhrformer import HRFormer
    assert isinstance(model.backbone, HRFormer)
    scope = cfg.default_scope
    if scope == 'mmseg':
        # The smallest valid input (cheap); for pose, 48x64 instead of the codec's 192x256 / 288x384
        # (the full size costs half a minute per B model on two cores).
        inputs, samples = seg_batch(model.decode_head[-1].num_classes, size=(32, 32))
    elif scope == 'mmpose':
        inputs, samples = pose_batch(n=1)
    else:
        inputs, samples = cls_batch(model.head.num_classes)
    model.train()
    losses = model(inputs, samples, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
    assert len(preds) == len(inputs)


def test_every_seed_result_has_a_config():
    names = {p.name for p in CONFIGS}
    for arch in ('s', 'b'):
        for suffix in ('4xb2-80k_cityscapes-512x1024', '4xb2-150k_ade20k-520x520',
                       '4xb4-60k_pascal-context-59-520x520', '4xb4-60k_coco-stuff10k-520x520'):
            assert f'ocrnet_hrformer-{arch}_{suffix}.py' in names
    for wide in ('ocrnet_hrformer-b-w15_4xb2-80k_cityscapes-512x1024.py',
                 'ocrnet_hrformer-b-w13_4xb2-150k_ade20k-520x520.py',
                 'ocrnet_hrformer-b-w15_4xb4-60k_pascal-context-59-520x520.py',
                 'ocrnet_hrformer-b-w15_4xb4-60k_coco-stuff10k-520x520.py'):
        assert wide in names
    pose = [p.name for p in CONFIGS if p.parent.name == 'hrformer_pose']
    assert len(pose) == 8  # S / B x 256x192 / 384x288, each with an RPE-off twin


def test_tta_settings_present():
    # `--tta` works on every seg config (quickstart included); the paper's pose configs test with
    # flips (the pose quickstart's figures code left and right keypoints by hue: no flip there).
    for path in CONFIGS:
        cfg = shipped_config(path)
        if cfg.default_scope == 'mmseg':
            assert cfg.tta_model.type == 'SegTTAModel', path
            assert any(t.get('type') == 'TestTimeAug' for t in cfg.tta_pipeline), path
        elif cfg.default_scope == 'mmpose':
            assert cfg.model.test_cfg.flip_test == (path.parent.name == 'hrformer_pose'), path


def test_settings_index_is_what_every_config_sets():
    # The commands' refusal names the fitting config from the index (mmhrformer/checkpoint/
    # settings.py): it must hold what MMEngine loads from each config, hosts' bases included.
    index = json.loads((ROOT / 'configs' / SETTINGS_INDEX).read_text())
    assert index['fingerprint'] == configs_fingerprint(ROOT / 'configs'), \
        'a config changed: run tools/make_settings_index.py'
    assert index['configs'] == {str(path.relative_to(ROOT / 'configs')):
                                config_settings(shipped_config(path)) for path in CONFIGS}


SEG_CONFIGS = [p for p in CONFIGS if p.parent.name == 'hrformer']
POSE_CONFIGS = [p for p in CONFIGS if p.parent.name == 'hrformer_pose']


def ids(paths):
    return [p.name for p in paths]


@pytest.fixture(scope='module')
def seg_files(tmp_path_factory):
    import cv2
    root = tmp_path_factory.mktemp('seg')
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / 'img.png'), rng.integers(0, 255, (180, 300, 3), dtype=np.uint8))
    cv2.imwrite(str(root / 'seg.png'), rng.integers(0, 20, (180, 300), dtype=np.uint8))
    return root


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=ids(SEG_CONFIGS))
def test_seg_pipelines_run(path, seg_files):
    """The train, test and multi-scale + flip (--tta) pipelines run on an image file."""
    from mmcv.transforms import Compose
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = shipped_config(path)

    load = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'LoadAnnotations')
    reduce_zero_label = bool(load.get('reduce_zero_label'))  # what the dataset would pass along

    def sample():
        return dict(img_path=str(seg_files / 'img.png'), seg_map_path=str(seg_files / 'seg.png'),
                    reduce_zero_label=reduce_zero_label, seg_fields=[])

    crop = cfg.model.data_preprocessor.size
    out = Compose(cfg.train_dataloader.dataset.pipeline)(sample())
    # cropped (the data preprocessor pads to the crop size later)
    assert tuple(out['inputs'].shape[1:]) <= tuple(crop)
    assert out['data_samples'].gt_sem_seg.data.shape[1:] == out['inputs'].shape[1:]
    out = Compose(cfg.test_dataloader.dataset.pipeline)(sample())
    assert out['data_samples'].gt_sem_seg.data.shape[1:] == (180, 300)  # labels stay at full size
    tta = Compose(cfg.tta_pipeline)(sample())
    ratios = {0.75, 1.0, 1.25} if 'w15_4xb2-80k_cityscapes' not in path.name else {
        0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}
    assert len(tta['inputs']) == 2 * len(ratios)  # every scale, plain and flipped
    assert sum(s.flip for s in tta['data_samples']) == len(ratios)
    widths = sorted({t.shape[2] for t in tta['inputs']})
    assert len(widths) == len(ratios)


# dataset: (classes, images per iteration, iterations, crop, OHEM min_kept per image or None)
OFFICIAL_SEG = {
    'cityscapes': (19, 8, 80000, (512, 1024), 100000),
    'ade20k': (150, 8, 150000, (520, 520), 100000),
    'pascal-context-59': (59, 16, 60000, (520, 520), None),
    'coco-stuff10k': (171, 16, 60000, (520, 520), 50000),
}


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=ids(SEG_CONFIGS))
def test_seg_official_recipe(path):
    """The numbers of the official openseg runs (HRFORMER.md, seg/scripts/*/hrt/*.sh)."""
    cfg = shipped_config(path)
    name = path.name
    dataset = next(d for d in OFFICIAL_SEG if f'_{d}-' in name)
    classes, batch, iters, crop, min_kept = OFFICIAL_SEG[dataset]
    gpus = int(name.split('_')[2].split('xb')[0])
    assert gpus * cfg.train_dataloader.batch_size == batch
    assert cfg.train_cfg.max_iters == iters and f'-{iters // 1000}k_' in name
    assert tuple(cfg.model.data_preprocessor.size) == crop
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay, opt.fused) == ('AdamW', 1e-4, 0.01, True)
    pw = cfg.optim_wrapper.paramwise_cfg
    assert pw.norm_decay_mult == 0 and pw.bias_decay_mult == 0
    assert pw.custom_keys['relative_position_bias_table'].decay_mult == 0
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.end, poly.type, poly.power) == ('LinearLR', 1500, 'PolyLR', 0.9)
    assert (poly.begin, poly.end) == (1500, iters)

    bb = cfg.model.backbone
    arch = 'base' if '_hrformer-b' in name else 'small'
    assert bb.type == 'mmhrformer.HRFormer' and bb.arch == arch
    assert bb.get('upsample_mode', 'nearest') == 'nearest'  # official seg / cls weights
    window = 15 if '-w15_' in name else 13 if '-w13_' in name else 7
    assert bb.get('window_size', 7) == window
    drop = 0.4 if (arch == 'base' and dataset == 'cityscapes') else 0.3 if (
        window == 15 and dataset == 'pascal-context-59') else 0.2
    assert bb.drop_path_rate == drop
    assert bb.init_cfg.type == 'Pretrained'
    assert bb.init_cfg.checkpoint == f'checkpoints/hrformer-{arch[0]}_in1k.pth'
    assert cfg.norm_cfg.type == 'SyncBN'

    channels = [78, 156, 312, 624] if arch == 'base' else [32, 64, 128, 256]
    aux, ocr = cfg.model.decode_head
    assert cfg.model.type == 'CascadeEncoderDecoder' and cfg.model.num_stages == 2
    assert (aux.type, aux.channels, aux.kernel_size, aux.num_convs) == ('FCNHead', 512, 3, 1)
    assert (ocr.type, ocr.channels, ocr.ocr_channels, ocr.dropout_ratio) == (
        'OCRHead', 512, 256, 0.05)
    for head, weight in ((aux, 0.4), (ocr, 1.0)):
        assert head.num_classes == classes and list(head.in_channels) == channels
        assert head.input_transform == 'resize_concat' and tuple(head.in_index) == (0, 1, 2, 3)
        assert head.align_corners  # openseg
        assert head.loss_decode.loss_weight == weight
        assert (head.loss_decode.get('class_weight') is not None) == (dataset == 'cityscapes')
    assert aux.get('sampler') is None
    if min_kept is None:
        assert ocr.get('sampler') is None
    else:
        assert (ocr.sampler.type, ocr.sampler.thresh, ocr.sampler.min_kept) == (
            'OHEMPixelSampler', 0.9, min_kept)


OFFICIAL_POSE = {  # (arch, input): (drop path, images per GPU, sigma, head input channels)
    ('s', '256x192'): (0.1, 32, 2, 32),
    ('s', '384x288'): (0.1, 32, 3, 32),
    ('b', '256x192'): (0.2, 32, 2, 78),
    ('b', '384x288'): (0.3, 8, 3, 78),
}


@pytest.mark.parametrize('path', POSE_CONFIGS, ids=ids(POSE_CONFIGS))
def test_pose_official_recipe(path):
    """The numbers of the official pose configs (pose/configs/top_down/hrt/coco/hrt_*.py)."""
    cfg = shipped_config(path)
    name = path.name
    arch = name.split('_')[1].split('-')[1]
    size = name.rsplit('-', 1)[1][:-3]
    drop, per_gpu, sigma, head_in = OFFICIAL_POSE[(arch, size)]
    h, w = (int(v) for v in size.split('x'))
    assert tuple(cfg.codec.input_size) == (w, h) and cfg.codec.sigma == sigma
    assert cfg.codec.type == 'MSRAHeatmap' and tuple(cfg.codec.heatmap_size) == (w // 4, h // 4)
    assert cfg.train_dataloader.batch_size == per_gpu and f'_8xb{per_gpu}-' in name
    assert cfg.train_cfg.max_epochs == 210
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay, opt.fused) == ('AdamW', 5e-4, 0.01, True)
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['relative_position_bias_table'].decay_mult == 0
    warm, step = cfg.param_scheduler
    assert (warm.type, warm.end, warm.by_epoch) == ('LinearLR', 500, False)
    assert (step.type, list(step.milestones), step.end) == ('MultiStepLR', [170, 200], 210)
    bb = cfg.model.backbone
    assert bb.type == 'mmhrformer.HRFormer'  # bare 'HRFormer' is MMPose's own
    assert bb.arch == {'s': 'small', 'b': 'base'}[arch] and bb.drop_path_rate == drop
    assert bb.upsample_mode == 'bilinear' and tuple(bb.out_indices) == (0, )
    norpe = '-norpe_' in name
    assert bb.get('with_rpe', True) == (not norpe)
    assert (bb.init_cfg is None) == norpe  # RPE-off configs evaluate converted official weights
    head = cfg.model.head
    assert (head.type, head.in_channels, head.out_channels) == ('HeatmapHead', head_in, 17)
    assert head.deconv_out_channels is None
    assert cfg.model.test_cfg.flip_test and cfg.model.test_cfg.shift_heatmap
    assert cfg.val_evaluator.type == 'CocoMetric'


# What each host's inferencer reads from a config, besides the model: MMSegInferencer and
# MMPretrain's the test pipeline; MMPoseInferencer the test pipeline, data_mode and the dataset
# type (its detector choice); all of them the default scope.
INFERENCER_KEYS = {'mmseg': ('test_dataloader', ), 'mmpretrain': ('test_dataloader', ),
                   'mmpose': ('test_dataloader', 'data_mode', 'dataset_type')}


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[str(p.relative_to(ROOT / 'configs')) for p in CONFIGS])
def test_config_has_what_its_host_inferencer_reads(path):
    cfg = shipped_config(path)
    for key in INFERENCER_KEYS[cfg.default_scope]:
        assert key in cfg, f'{path.name}: no {key}'
    assert cfg.test_dataloader.dataset.pipeline
    if cfg.default_scope == 'mmpose':
        assert cfg.data_mode == 'topdown'
