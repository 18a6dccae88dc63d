"""The backbone inside the real MMSeg, MMPose and MMPretrain models, built from their registries."""
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import ConfigDict

import mmhrformer
from builders import MINI_ARCH, cls_batch, pose_batch, seg_batch  # tests/builders.py
from mmhrformer import HRFormer
from mmhrformer.checkpoint import ocrnet_cfg

TINY = dict(type='mmhrformer.HRFormer', arch='tiny')


@pytest.mark.parametrize('type_name', ['HRFormer', 'mmhrformer.HRFormer'])
def test_ocrnet_in_mmseg(type_name):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)

    model = MODELS.build(ConfigDict(ocrnet_cfg(dict(TINY, type=type_name), num_classes=3,
                                               channels=mmhrformer.ARCH_ZOO['tiny']['channels'])))
    assert isinstance(model.backbone, HRFormer)
    model.init_weights()
    h, w = 67, 93  # odd on purpose: padding and exact-size fusion everywhere
    inputs, samples = seg_batch(3, size=(h, w))
    model.train()
    losses = model(inputs, samples, mode='loss')
    assert {'decode_0.loss_ce', 'decode_1.loss_ce'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
        preds = model(inputs, samples, mode='predict')
    assert logits.shape == (2, 3, (h + 3) // 4, (w + 3) // 4)
    assert preds[0].pred_sem_seg.data.shape == (1, h, w)


def test_topdown_pose_in_mmpose():
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules
    register_all_modules(init_default_scope=True)

    cfg = dict(
        type='TopdownPoseEstimator',
        data_preprocessor=dict(type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(TINY, out_indices=(0, ), upsample_mode='bilinear'),
        head=dict(type='HeatmapHead', in_channels=18, out_channels=17, deconv_out_channels=None,
                  loss=dict(type='KeypointMSELoss', use_target_weight=True),
                  decoder=dict(type='MSRAHeatmap', input_size=(64, 80), heatmap_size=(16, 20),
                               sigma=2)),
        test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))
    model = MODELS.build(ConfigDict(cfg))
    assert isinstance(model.backbone, HRFormer)
    model.init_weights()
    inputs, samples = pose_batch(size=(64, 80))
    model.train()
    losses = model(inputs, samples, mode='loss')
    assert 'loss_kpt' in losses and torch.isfinite(losses['loss_kpt'])
    losses['loss_kpt'].backward()
    model.eval()
    with torch.no_grad():
        heatmaps = model(inputs, None, mode='tensor')
        preds = model(inputs, samples, mode='predict')
    assert heatmaps.shape == (2, 17, 20, 16)
    assert preds[0].pred_instances.keypoints.shape == (1, 17, 2)


def test_mmpose_keeps_its_own_hrformer():
    from mmpose.registry import MODELS
    assert MODELS.get('HRFormer') is not HRFormer
    assert MODELS.get('mmhrformer.HRFormer') is HRFormer


@pytest.mark.parametrize('type_name', ['HRFormer', 'mmhrformer.HRFormer'])
def test_image_classifier_in_mmpretrain(type_name):
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)

    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(TINY, type=type_name, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=144,
                  loss=dict(type='CrossEntropyLoss'))))
    assert isinstance(model.backbone, HRFormer)
    model.init_weights()
    inputs, samples = cls_batch(5)
    losses = model(inputs, samples, mode='loss')
    losses['loss'].backward()
    model.eval()
    with torch.no_grad():
        preds = model(inputs, mode='predict')
    assert preds[0].pred_score.shape == (5, )


def test_pretrained_init_cfg_with_prefix(tmp_path):
    src = HRFormer(arch=MINI_ARCH)
    torch.nn.init.normal_(src.stage2[0].branches[0][0].attn.q_proj.weight)
    ckpt = tmp_path / 'full.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}}, ckpt)
    dst = HRFormer(arch=MINI_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                                                 prefix='backbone.'))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k


def test_import_with_only_mmseg_installed():
    # Hide MMPose and MMPretrain as if they were not installed: the package still imports and
    # registers into MMSeg.
    code = textwrap.dedent('''
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] in ('mmpose', 'mmpretrain'):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Hide())
        import mmhrformer
        from mmseg.registry import MODELS
        assert MODELS.get('HRFormer') is mmhrformer.HRFormer
        assert 'mmpose' not in sys.modules and 'mmpretrain' not in sys.modules
        print('ok')
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('ok')


def test_version():
    assert mmhrformer.__version__
