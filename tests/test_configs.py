"""Every shipped config loads, builds its model through its host's registry, and runs a loss and a
predict step on a tiny input (CPU: SyncBN is reverted to BN, as MMEngine does without a GPU)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.structures import InstanceData, PixelData

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


def seg_batch(model, n=2, size=(64, 64)):
    from mmseg.structures import SegDataSample
    h, w = size
    classes = model.decode_head[-1].num_classes
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        s.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, h, w)))
        samples.append(s)
    return torch.rand(n, 3, h, w), samples


def pose_batch(cfg, n=2, size=(48, 64)):
    """A small input (w, h) instead of the codec's 192x256 / 288x384: the head maps stride 4, and the
    full size costs half a minute per B model on two cores."""
    from mmpose.structures import PoseDataSample
    w, h = size
    hw, hh = w // 4, h // 4
    samples = []
    for _ in range(n):
        s = PoseDataSample(metainfo=dict(
            img_shape=(h, w), input_size=(w, h), input_center=np.array([w / 2, h / 2]),
            input_scale=np.array([w, h], dtype=np.float32), flip_indices=list(range(17))))
        s.gt_instances = InstanceData(bboxes=np.array([[0., 0., w, h]]), bbox_scores=np.ones(1))
        s.gt_instance_labels = InstanceData(keypoint_weights=torch.ones(1, 17))
        s.gt_fields = PixelData(heatmaps=torch.rand(17, hh, hw))
        samples.append(s)
    return torch.rand(n, 3, h, w), samples


def cls_batch(model, n=2):
    from mmpretrain.structures import DataSample
    classes = model.head.num_classes
    return torch.rand(n, 3, 64, 64), [DataSample().set_gt_label(i % classes) for i in range(n)]


@pytest.mark.parametrize('path', CONFIGS, ids=[str(p.relative_to(ROOT / 'configs')) for p in CONFIGS])
def test_config_builds_and_steps(path):
    cfg = Config.fromfile(str(path))
    assert 'mmhrformer' in cfg.get('custom_imports', {}).get('imports', []), 'custom_imports'
    assert cfg.model.backbone.type in ('mmhrformer.HRFormer', 'HRFormer')
    torch.manual_seed(0)
    model = build(cfg)
    from mmhrformer import HRFormer
    assert isinstance(model.backbone, HRFormer)
    scope = cfg.default_scope
    if scope == 'mmseg':
        inputs, samples = seg_batch(model)
    elif scope == 'mmpose':
        inputs, samples = pose_batch(cfg, n=1)
    else:
        inputs, samples = cls_batch(model)
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
    pose = [n for n in names if n.startswith('td-hm_hrformer-')]
    assert len(pose) == 8  # S / B x 256x192 / 384x288, each with an RPE-off twin


def test_tta_settings_present():
    cfg = Config.fromfile(str(ROOT / 'configs/hrformer/ocrnet_hrformer-s_4xb2-80k_cityscapes-512x1024.py'))
    assert cfg.tta_model.type == 'SegTTAModel'
    assert any(t.get('type') == 'TestTimeAug' for t in cfg.tta_pipeline)
    pose = Config.fromfile(str(ROOT / 'configs/hrformer_pose/td-hm_hrformer-s_8xb32-210e_coco-256x192.py'))
    assert pose.model.test_cfg.flip_test
