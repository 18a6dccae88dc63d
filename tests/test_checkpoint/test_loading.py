"""Unconverted checkpoints of every layout, loaded where users put them (``init_cfg``,
``load_from`` / ``load_checkpoint``, ``load_state_dict``), give exactly the weights of the converted
checkpoint; a checkpoint that does not fill the backbone stops the load with one clear error.

The reference is :func:`mmhrformer.checkpoint.convert` (whose outputs the converter tests check
against the official code transcribed): a model loaded from the unconverted file must hold the very
tensors the converted state dict holds, key for key.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.runner import load_checkpoint, load_state_dict

import official  # tests/official.py
from builders import mmpose_hrformer  # tests/builders.py
from mmhrformer import HRFormer
from mmhrformer.checkpoint import CheckpointError, build_in_host, convert, ocrnet_cfg
from mmhrformer.checkpoint.convert import build_target
from mmhrformer.cli.host_tool import host_script

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[2]
TINY = (18, 36, 72, 144)


def assert_same_weights(model, state):
    """Every tensor of ``model`` equals the converted ``state``'s, and no key is left unset."""
    got = model.state_dict()
    assert got.keys() == state.keys()
    different = [k for k, v in state.items() if not torch.equal(got[k], v)]
    assert not different, different[:5]


def save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def official_pose_state(official_tiny):
    """Like the published pose checkpoints: backbone.*, no cls head, the last module fused into
    branch 0 only, a 1x1 heatmap head."""
    sd = {k: v for k, v in official.backbone_only(official_tiny, 'backbone.').items()
          if not re.match(r'backbone\.stage4\.1\.fuse_layers\.[123]', k)}
    sd['keypoint_head.final_layer.weight'] = torch.randn(17, 18, 1, 1) * 0.2
    sd['keypoint_head.final_layer.bias'] = torch.randn(17)
    return sd


@pytest.fixture(scope='module')
def official_cls_file(official_tiny, tmp_path_factory):
    return save(tmp_path_factory.mktemp('cls'), 'hrt_tiny.pth',
                {'model': official_tiny, 'epoch': 299, 'max_accuracy': 78.5})


# ---- the backbone's init_cfg ----

@pytest.mark.parametrize('prefix', [None, 'backbone'])
def test_official_cls_through_init_cfg(official_cls_file, official_tiny, prefix):
    cfg = dict(type='Pretrained', checkpoint=str(official_cls_file))
    if prefix:  # no key lies under it: the backbone is found from the keys
        cfg['prefix'] = prefix
    model = HRFormer(arch='tiny', init_cfg=cfg)
    model.init_weights()
    state, _ = convert({'model': official_tiny})
    assert_same_weights(model, state)


def test_window_and_pose_settings_follow_the_config(official_tiny, tmp_path):
    # Window-7 tables resized for window 15 as the converter does; the official pose weights'
    # unused tables dropped for with_rpe=False.
    seg = HRFormer(arch='tiny', window_size=15, init_cfg=dict(
        type='Pretrained', checkpoint=str(save(tmp_path, 'cls.pth', {'model': official_tiny}))))
    seg.init_weights()
    assert_same_weights(seg, convert({'model': official_tiny}, window_size=15)[0])

    pose_file = save(tmp_path, 'pose.pth', {'state_dict': official_pose_state(official_tiny)})
    pose = HRFormer(arch='tiny', with_rpe=False, upsample_mode='bilinear', out_indices=(0, ),
                    init_cfg=dict(type='Pretrained', checkpoint=str(pose_file),
                                  prefix='backbone.'))
    pose.init_weights()
    converted = convert(torch.load(pose_file, weights_only=True))[0]
    assert_same_weights(pose, {k[len('backbone.'):]: v for k, v in converted.items()
                               if k.startswith('backbone.')})


def test_mmpose_pretrained_through_init_cfg(tmp_path):
    # MMPose 1.x's ImageNet weights (fused qkv), as its HRFormer configs name them.
    theirs = mmpose_hrformer('tiny', 'bilinear')
    sd = theirs.state_dict()
    path = save(tmp_path, 'hrformer_tiny_mmpose.pth', {'state_dict': sd})
    model = HRFormer(arch='tiny', upsample_mode='bilinear',
                     init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_same_weights(model, convert({'state_dict': sd})[0])


def test_own_whole_model_checkpoint_with_prefix(tmp_path):
    segmentor = build_in_host('mmseg', ocrnet_cfg(dict(type='mmhrformer.HRFormer', arch='tiny'),
                                                  4, TINY, 32, 16))
    segmentor.init_weights()
    path = save(tmp_path, 'iter_10.pth', {'meta': {'iter': 10},
                                          'state_dict': segmentor.state_dict()})
    model = HRFormer(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                prefix='backbone.'))
    model.init_weights()
    assert_same_weights(model, segmentor.backbone.state_dict())


# ---- whole models: load_from / load_checkpoint / load_state_dict ----

def test_official_seg_through_load_checkpoint(official_tiny, tmp_path):
    source = official.openseg_checkpoint(official_tiny, num_classes=5, window=15)
    path = save(tmp_path, 'hrt_tiny_ocr.pth', source)
    state, meta = convert(source)
    reference = build_target(meta['target'], meta['model_settings'], state)
    model = build_target(meta['target'], meta['model_settings'], state)
    load_checkpoint(model, str(path), strict=True)  # what load_from and the inferencers run
    assert_same_weights(model, state)
    reference.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x, mode='tensor'), reference.eval()(x,
                                                                                 mode='tensor'))


def test_official_seg_v3_head_names_the_converter(official_tiny, tmp_path):
    source = official.openseg_checkpoint(official_tiny, num_classes=5, window=7)
    sd = source['state_dict']
    sd['module.conv3x3.0.weight'] = torch.randn(512, 270, 7, 7)  # openseg's grouped 7x7 "V3"
    path = save(tmp_path, 'hrt_tiny_ocr_v3.pth', source)
    model = build_in_host('mmseg', ocrnet_cfg(dict(type='mmhrformer.HRFormer', arch='tiny'),
                                              5, TINY))
    with pytest.raises(CheckpointError, match=r'V3.*hrformer2mmseg SRC DST'):
        load_checkpoint(model, str(path))


def test_official_pose_through_load_checkpoint(official_tiny, tmp_path):
    sd = official_pose_state(official_tiny)
    path = save(tmp_path, 'hrt_tiny_coco.pth', {'meta': {'epoch': 210}, 'state_dict': sd})
    state, meta = convert({'state_dict': sd})
    model = build_target(meta['target'], meta['model_settings'], state)
    load_checkpoint(model, str(path), strict=True)
    assert_same_weights(model, state)


def test_mmpose_pose_estimator_through_load_state_dict():
    theirs = mmpose_hrformer('tiny', 'bilinear', multiscale=False)
    sd = {f'backbone.{k}': v for k, v in theirs.state_dict().items()}
    sd['head.final_layer.weight'] = torch.randn(17, 18, 1, 1)
    sd['head.final_layer.bias'] = torch.randn(17)
    state, meta = convert({'state_dict': sd})
    model = build_target(meta['target'], meta['model_settings'], state)
    model.load_state_dict(dict(sd), strict=True)  # torch's own, not MMEngine's
    assert_same_weights(model, state)


def test_official_cls_through_load_from_of_a_classifier(official_cls_file, official_tiny):
    state, meta = convert({'model': official_tiny}, full_classifier=True)
    model = build_target(meta['target'], meta['model_settings'], state)
    load_checkpoint(model, str(official_cls_file), strict=True)
    assert_same_weights(model, state)


def test_official_backbone_names_through_torch_load_state_dict(official_tiny):
    model = HRFormer(arch='tiny')
    model.load_state_dict(official.backbone_only(official_tiny), strict=True)
    assert_same_weights(model, convert({'model': official_tiny})[0])


# ---- refusals ----

def test_refusals_name_the_file_the_layout_and_the_arch(official_tiny, tmp_path):
    def init(path, arch='tiny'):
        model = HRFormer(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        with pytest.raises(CheckpointError) as info:
            model.init_weights()
        message = str(info.value)
        assert '\n' not in message
        return message

    resnet = {f'layer1.0.conv{i}.weight': torch.randn(8, 8, 3, 3) for i in (1, 2)}
    message = init(save(tmp_path, 'resnet50.pth', {'state_dict': resnet}))
    assert message.startswith(f'{tmp_path / "resnet50.pth"}: ')
    assert 'no HRFormer layout' in message and 'backbone keys missing' in message

    small = official.random_state_dict('small', seed=2)
    message = init(save(tmp_path, 'hrt_small.pth', {'model': small}))
    assert 'official-cls layout' in message
    assert 'its shapes say HRFormer-small, the config builds HRFormer-tiny' in message

    good = save(tmp_path, 'hrt_tiny.pth', {'model': official_tiny})
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:30000])
    assert 'is truncated, corrupt or not a PyTorch checkpoint' in init(truncated)

    half = dict(list(official_tiny.items())[:500])
    message = init(save(tmp_path, 'half.pth', {'model': half}))
    assert re.search(r'\d+ of \d+ backbone keys missing: stage', message)


def test_load_from_of_another_model_stops_the_load(tmp_path):
    segmentor = build_in_host('mmseg', ocrnet_cfg(dict(type='mmhrformer.HRFormer', arch='tiny'),
                                                  4, TINY, 32, 16))
    foreign = {'backbone.conv1.weight': torch.randn(64, 3, 7, 7),
               'decode_head.conv_seg.weight': torch.randn(4, 32, 1, 1)}
    path = save(tmp_path, 'resnet_seg.pth', {'state_dict': foreign})
    with pytest.raises(CheckpointError, match="HRFormer at 'backbone.' cannot take"):
        load_checkpoint(segmentor, str(path))
    with pytest.raises(CheckpointError, match='no HRFormer layout'):
        load_state_dict(segmentor, foreign)


@pytest.mark.slow
def test_mmseg_train_tool_with_an_unconverted_official_checkpoint(official_tiny, tmp_path):
    """MMSeg's own tools/train.py, the quickstart config with the official file in the
    backbone's init_cfg: at lr 0 with frozen BN statistics, the checkpoint after the first
    iteration holds exactly the converted backbone."""
    path = save(tmp_path, 'hrt_tiny.pth', {'model': official_tiny})
    config = tmp_path / 'seg.py'
    config.write_text(
        f"_base_ = ['{ROOT}/configs/quickstart/ocrnet_hrformer-t_tiny-seg.py']\n"
        f"model = dict(backbone=dict(norm_eval=True, init_cfg=dict(type='Pretrained', "
        f"checkpoint='{path}')))\n"
        "optim_wrapper = dict(optimizer=dict(lr=0.0, weight_decay=0.0))\n"
        "train_cfg = dict(max_iters=1, val_interval=100)\n"
        "param_scheduler = []\n"
        "default_hooks = dict(checkpoint=dict(interval=1))\n")
    result = subprocess.run([sys.executable, str(host_script('mmseg', 'train')), str(config),
                             '--work-dir', str(tmp_path / 'work')], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(tmp_path / 'work' / 'iter_1.pth', weights_only=True)['state_dict']
    converted, _ = convert({'model': official_tiny})
    backbone = {k[len('backbone.'):]: v for k, v in saved.items() if k.startswith('backbone.')}
    assert backbone.keys() == converted.keys()
    assert all(torch.equal(backbone[k], v) for k, v in converted.items())
