"""The backbone inside the real MMSeg, MMPose and MMPretrain models, built from their registries."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict

import mmhrformer
from mmhrformer import HRFormer

TINY = dict(type='mmhrformer.HRFormer', arch='tiny')
TINY_CHANNELS = [18, 36, 72, 144]


def ocrnet_cfg(backbone):
    norm_cfg = dict(type='BN', requires_grad=True)
    return dict(
        type='CascadeEncoderDecoder',
        num_stages=2,
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=255, size_divisor=32),
        backbone=backbone,
        decode_head=[
            dict(type='FCNHead', in_channels=TINY_CHANNELS, channels=sum(TINY_CHANNELS),
                 in_index=(0, 1, 2, 3), input_transform='resize_concat', kernel_size=1,
                 num_convs=1, concat_input=False, dropout_ratio=-1, num_classes=3,
                 norm_cfg=norm_cfg, align_corners=False,
                 loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
            dict(type='OCRHead', in_channels=TINY_CHANNELS, in_index=(0, 1, 2, 3),
                 input_transform='resize_concat', channels=64, ocr_channels=32,
                 dropout_ratio=-1, num_classes=3, norm_cfg=norm_cfg, align_corners=False,
                 loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        ],
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


@pytest.mark.parametrize('type_name', ['HRFormer', 'mmhrformer.HRFormer'])
def test_ocrnet_in_mmseg(type_name):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    model = MODELS.build(ConfigDict(ocrnet_cfg(dict(TINY, type=type_name))))
    assert isinstance(model.backbone, HRFormer)
    model.init_weights()
    h, w = 67, 93  # odd on purpose: padding and exact-size fusion everywhere
    inputs = torch.rand(2, 3, h, w)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, h, w)))
        samples.append(s)
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
    from mmpose.structures import PoseDataSample
    from mmengine.structures import InstanceData, PixelData

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
    inputs = torch.rand(2, 3, 80, 64)
    samples = []
    for _ in range(2):
        s = PoseDataSample(metainfo=dict(
            img_shape=(80, 64), input_size=(64, 80), input_center=np.array([32., 40.]),
            input_scale=np.array([64., 80.]), flip_indices=list(range(17))))
        s.gt_instances = InstanceData(bboxes=np.array([[0., 0., 64., 80.]]), bbox_scores=np.ones(1))
        s.gt_instance_labels = InstanceData(keypoint_weights=torch.ones(1, 17))
        s.gt_fields = PixelData(heatmaps=torch.rand(17, 20, 16))
        samples.append(s)
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
    from mmpretrain.structures import DataSample

    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(TINY, type=type_name, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=144,
                  loss=dict(type='CrossEntropyLoss'))))
    assert isinstance(model.backbone, HRFormer)
    model.init_weights()
    inputs = torch.rand(2, 3, 64, 64)
    samples = [DataSample().set_gt_label(i) for i in (1, 3)]
    losses = model(inputs, samples, mode='loss')
    losses['loss'].backward()
    model.eval()
    with torch.no_grad():
        preds = model(inputs, mode='predict')
    assert preds[0].pred_score.shape == (5, )


def test_pretrained_init_cfg_with_prefix(tmp_path):
    src = HRFormer(arch='tiny')
    torch.nn.init.normal_(src.stage2[0].branches[0][0].attn.q_proj.weight)
    ckpt = tmp_path / 'full.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}}, ckpt)
    dst = HRFormer(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
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
