"""tools/model_converters/hrformer2mmseg.py on random checkpoints of every layout it converts.

Checkpoints are built from the official key lists (weights AND BN statistics random), converted by
the tool (as a subprocess where the CLI itself is under test, else through its ``main`` loaded from
its path), loaded strictly into the real host models built through their registries, and compared
with independent implementations: the official code transcribed (tests/official.py: backbone per
fork, openseg's OCR head) and MMPose 1.x's own HRFormer.
"""
import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import mmhrformer
import official  # tests/official.py
from builders import load_into_mmpose, mmpose_hrformer  # tests/builders.py
from mmhrformer import HRFormer
from mmhrformer.checkpoint import CheckpointError, build_in_host, convert, ocrnet_cfg
from mmhrformer.checkpoint.layouts import fold_conv_bias, strip

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'model_converters' / 'hrformer2mmseg.py'
TINY = (18, 36, 72, 144)

spec = importlib.util.spec_from_file_location('hrformer2mmseg', TOOL)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def training_checkpoint(sd):
    """Like the official cls code's save_checkpoint, less its yacs config (see the unsafe test)."""
    params = [v for k, v in sd.items() if k.endswith('.weight')][:3]
    return {'model': sd, 'max_accuracy': 78.5, 'epoch': 299,
            'optimizer': {'state': {i: {'step': torch.tensor(10.), 'exp_avg': torch.zeros_like(p)}
                                    for i, p in enumerate(params)},
                          'param_groups': [{'lr': 5e-4, 'weight_decay': 0.05,
                                            'params': [0, 1, 2]}]},
            'lr_scheduler': {'base_values': [5e-4], 't_initial': 300}}


def run_cli(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def run_main(capsys, *args):
    """The tool's main() in this process: (exit status, stdout, stderr)."""
    try:
        rc = tool.main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope='module')
def converted_cls(official_tiny, tmp_path_factory):
    """The CLI on an official training checkpoint (optimizer / scheduler state included)."""
    tmp = tmp_path_factory.mktemp('cls')
    src, dst = tmp / 'hrt_tiny.pth', tmp / 'hrformer-t_in1k.pth'
    torch.save(training_checkpoint(official_tiny), src)
    result = run_cli(src, dst)
    assert result.returncode == 0, result.stderr
    return dst, result.stdout


def test_cli_official_cls_report_and_meta(converted_cls, official_tiny):
    dst, stdout = converted_cls
    head = sum(k.startswith(official.CLS_HEAD) for k in official_tiny)
    index = sum(k.endswith('relative_position_index') for k in official_tiny)
    assert 'layout: official-cls -> HRFormer backbone' in stdout
    assert 'params: 2.572M' in stdout  # the official backbone-only count for T
    assert (f'keys: 2083 read, {2083 - head - index} written; dropped: {head} classification '
            f'head, {index} relative_position_index') in stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['source_layout'] == 'official-cls'
    assert ckpt['meta']['model_settings'] == dict(with_rpe=True, upsample_mode='nearest',
                                                  arch='tiny', window_size=7)
    assert not any(k.startswith('backbone.') for k in ckpt['state_dict'])


def test_official_cls_loads_through_init_cfg(converted_cls, official_tiny):
    from mmengine.runner import load_checkpoint
    dst, _ = converted_cls
    model = HRFormer(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    expected = mmhrformer.convert_official_backbone(official_tiny)
    got = model.state_dict()
    assert got.keys() == {k for k in expected if not k.startswith(official.CLS_HEAD)}
    assert all(torch.equal(got[k], expected[k]) for k in got)
    load_checkpoint(HRFormer(arch='tiny'), str(dst), strict=True)  # nothing missing or extra


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_official_cls_matches_mmpose_hrformer(converted_cls, mode):
    dst, _ = converted_cls
    state = torch.load(dst, weights_only=True)['state_dict']
    ours = HRFormer(arch='tiny', upsample_mode=mode).eval()
    ours.load_state_dict(state, strict=True)
    theirs = mmpose_hrformer('tiny', mode)
    load_into_mmpose(theirs, state)
    x = torch.randn(1, 3, 224, 224)  # MMPose's fixed-factor upsampling needs exact halvings
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x), strict=True):
            # Maps of magnitude ~100 (random BN statistics): float32 rounding of two summation
            # orders, relative to that scale.
            torch.testing.assert_close(a, b, atol=2e-6 * b.abs().max().item(), rtol=0)


def test_official_cls_full_classifier(official_tiny, tmp_path, capsys):
    src, dst = tmp_path / 'hrt_tiny.pth', tmp_path / 'cls.pth'
    torch.save({'model': official_tiny}, src)
    rc, out, err = run_main(capsys, src, dst, '--full-classifier')
    assert rc == 0, err
    assert 'mmpretrain ImageClassifier' in out and 'params: 8.036M' in out  # official T count
    model = build_in_host('mmpretrain', dict(
        type='ImageClassifier', backbone=dict(type='mmhrformer.HRFormer', arch='tiny'),
        neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=TINY),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))).eval()
    state = torch.load(dst, weights_only=True)['state_dict']
    model.load_state_dict(state, strict=True)
    assert torch.equal(state['head.fc.weight'], official_tiny['classifier.weight'])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64), mode='tensor').shape == (1, 1000)


def test_window_size_resizes_every_table(official_tiny, tmp_path, capsys):
    src, dst = tmp_path / 'hrt_tiny.pth', tmp_path / 'w13.pth'
    torch.save({'model': official_tiny}, src)
    rc, _, err = run_main(capsys, src, dst, '--window-size', 13)
    assert rc == 0, err
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings']['window_size'] == 13
    tables = {k: v for k, v in ckpt['state_dict'].items() if k.endswith('bias_table')}
    assert len(tables) == sum(k.endswith('bias_table') for k in official_tiny) > 0
    for key, table in tables.items():
        source = official_tiny[key.replace('.attn.', '.attn.attn.')]
        assert table.shape == (25 * 25, source.shape[1])
        torch.testing.assert_close(table, official.resize_table(source, 13), atol=0, rtol=0)
    model = HRFormer(arch='tiny', window_size=13).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 18, 16, 16)


@pytest.mark.parametrize('arch,params', [('small', 7.891e6), ('base', 44.041e6)])
def test_arch_found_from_shapes(arch, params):
    state, meta = convert({'model': official.random_state_dict(arch)}, arch=arch[0])
    assert meta['model_settings']['arch'] == arch
    count = sum(v.numel() for k, v in state.items()
                if v.is_floating_point() and not k.endswith(('running_mean', 'running_var')))
    assert abs(count - params) < 1e3  # the official backbone-only counts (HRFORMER.md)


def test_official_seg_gives_openseg_logits(official_tiny, tmp_path, capsys):
    checkpoint = official.openseg_checkpoint(official_tiny)
    src, dst = tmp_path / 'hrt_tiny_ocr.pth', tmp_path / 'ocrnet.pth'
    torch.save(checkpoint, src)
    rc, out, err = run_main(capsys, src, dst)
    assert rc == 0, err
    assert 'official-seg' in out and 'align_corners=True' in out and 'bgr_to_rgb=False' in out
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings'] == dict(with_rpe=True, upsample_mode='nearest',
                                                  arch='tiny', window_size=15)
    model = build_in_host('mmseg', ocrnet_cfg(dict(type='HRFormer', arch='tiny', window_size=15),
                                              num_classes=5, channels=TINY)).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    # openseg's backbone (tests/official.py) and heads, at a size divisible by 32 and at an
    # odd one, where the fusion's exact resize and the heads' resize_concat matter.
    source = {k[len('module.backbone.'):]: v for k, v in checkpoint['state_dict'].items()
              if k.startswith('module.backbone.')}
    for size in ((64, 96), (97, 130)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            feats = model.extract_feat(x)
            expected_feats = official.backbone(x, source, (1, 2, 4, 8), 15, 'seg')
            aux = model.decode_head[0].forward(feats)
            logits = model.decode_head[1].forward(feats, aux)
            expected, expected_aux = official.openseg_heads(checkpoint['state_dict'], expected_feats)
        for ours, theirs in zip(feats, expected_feats):
            torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(aux, expected_aux, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_conv_bias_folds_exactly_into_bn():
    from mmcv.cnn import ConvModule
    g = torch.Generator().manual_seed(3)
    conv = torch.nn.Conv2d(16, 8, 3, padding=1, bias=True)
    bn = torch.nn.BatchNorm2d(8)
    sd = {'head.0.weight': torch.randn(8, 16, 3, 3, generator=g),
          'head.0.bias': torch.randn(8, generator=g) * 2,
          **official.bn_stats('head.1.0', 8, g)}
    conv.load_state_dict({k[len('head.0.'):]: sd[k] for k in ('head.0.weight', 'head.0.bias')})
    bn.load_state_dict({k[len('head.1.0.'):]: v for k, v in sd.items() if k.startswith('head.1.0')})
    folded, used = fold_conv_bias(sd, 'head.0', 'm')
    assert sorted(used) == sorted(sd)
    module = ConvModule(16, 8, 3, padding=1, norm_cfg=dict(type='BN'))
    module.load_state_dict({k[len('m.'):]: v for k, v in folded.items()}, strict=True)
    assert module.conv.bias is None
    x = torch.randn(2, 16, 9, 11, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(x), F.relu(bn.eval()(conv(x))),
                                   atol=1e-5, rtol=1e-5)


def pose_estimator(with_rpe):
    return build_in_host('mmpose', dict(
        type='TopdownPoseEstimator',
        backbone=dict(type='mmhrformer.HRFormer', arch='tiny', with_rpe=with_rpe,
                      upsample_mode='bilinear', out_indices=(0, )),
        head=dict(type='HeatmapHead', in_channels=18, out_channels=17, deconv_out_channels=None,
                  loss=dict(type='KeypointMSELoss')))).eval()


def check_heatmaps(model, reference_backbone, state, size=(128, 96)):
    """The estimator's heatmaps equal the reference backbone's features through the 1x1 head."""
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        heatmaps = model(x, None, mode='tensor')
        features = reference_backbone(x)
        assert len(features) == 1
        expected = F.conv2d(features[0], state['head.final_layer.weight'],
                            state['head.final_layer.bias'])
    assert heatmaps.shape == (2, 17, (size[0] + 3) // 4, (size[1] + 3) // 4)
    torch.testing.assert_close(heatmaps, expected, atol=2e-6 * expected.abs().max().item(), rtol=0)
    return (heatmaps - expected).abs().max().item()


def test_official_pose_to_topdown(official_tiny, tmp_path, capsys):
    # Like the published ones: no cls head; the last module fuses into branch 0 only.
    sd = official.backbone_only(official_tiny, 'backbone.')
    sd = {k: v for k, v in sd.items()
          if not re.match(r'backbone\.stage4\.1\.fuse_layers\.[123]', k)}
    sd['keypoint_head.final_layer.weight'] = torch.randn(17, 18, 1, 1) * 0.2
    sd['keypoint_head.final_layer.bias'] = torch.randn(17)
    src, dst = tmp_path / 'hrt_tiny_coco.pth', tmp_path / 'td-hm.pth'
    torch.save({'meta': {'epoch': 210, 'config': 'model = dict(...)'}, 'state_dict': sd}, src)
    rc, out, err = run_main(capsys, src, dst)
    assert rc == 0, err
    assert 'official-pose' in out and 'with_rpe=False' in out
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings'] == dict(with_rpe=False, upsample_mode='bilinear',
                                                  out_indices=(0, ), arch='tiny', window_size=7)
    assert not any('relative_position' in k for k in ckpt['state_dict'])
    model = pose_estimator(with_rpe=False)
    model.load_state_dict(ckpt['state_dict'], strict=True)

    # Against the official pose code (tests/official.py), at a size divisible by 32 and at
    # odd sizes, where its two-step upsampling (x2^k, then a resize) decides the numbers.
    source = strip(sd, 'backbone.')

    def official_pose(x):
        return official.backbone(x, source, (1, 2, 4, 8), 7, 'pose')

    for size in ((128, 96), (200, 150), (97, 130)):
        check_heatmaps(model, official_pose, ckpt['state_dict'], size)
    # MMPose 1.x's HRFormer agrees where it runs; at 200x150 its fixed-factor upsampling makes
    # branches of different sizes (50x38 vs 52x40) and it cannot run at all.
    reference = mmpose_hrformer('tiny', 'bilinear', with_rpe=False, multiscale=False)
    load_into_mmpose(reference, {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()
                                 if k.startswith('backbone.')})
    check_heatmaps(model, reference, ckpt['state_dict'])
    with pytest.raises(RuntimeError, match='size of tensor'):
        with torch.no_grad():
            reference(torch.randn(1, 3, 200, 150))


def test_mmpose_backbone_round_trip(tmp_path, capsys):
    ours = HRFormer(arch='tiny', upsample_mode='bilinear')
    ours.init_weights()
    theirs = mmpose_hrformer('tiny', 'bilinear')
    load_into_mmpose(theirs, ours.state_dict())
    src, dst = tmp_path / 'mmpose.pth', tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in theirs.state_dict().items()}}, src)
    rc, out, err = run_main(capsys, src, dst, '--arch', 'tiny')
    assert rc == 0, err
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings'] == dict(with_rpe=True, upsample_mode='bilinear',
                                                  arch='tiny', window_size=7)
    back = ckpt['state_dict']
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())


def test_mmpose_pose_checkpoint_to_topdown(tmp_path, capsys):
    theirs = mmpose_hrformer('tiny', 'bilinear', multiscale=False)
    sd = {f'backbone.{k}': v for k, v in theirs.state_dict().items()}
    sd['keypoint_head.final_layer.weight'] = torch.randn(17, 18, 1, 1) * 0.2  # 0.x head name
    sd['keypoint_head.final_layer.bias'] = torch.randn(17)
    src, dst = tmp_path / 'hrformer_small_coco.pth', tmp_path / 'td-hm.pth'
    torch.save({'state_dict': sd}, src)
    rc, out, err = run_main(capsys, src, dst)
    assert rc == 0, err
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings']['with_rpe'] is True
    model = pose_estimator(with_rpe=True)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    check_heatmaps(model, theirs, ckpt['state_dict'])


@pytest.fixture(scope='module')
def good_source(official_tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp('good') / 'hrt_tiny.pth'
    torch.save({'model': official_tiny}, path)
    return path


def test_cli_truncated_file(good_source, tmp_path):
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good_source.read_bytes()[:20000])
    dst = tmp_path / 'out' / 'dst.pth'
    result = run_cli(truncated, dst)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'truncated' in lines[0], result.stderr
    assert not dst.exists() and result.stdout == ''


def bad_cases(official_tiny, good, tmp):
    def save(name, obj):
        torch.save(obj, tmp / name)
        return tmp / name

    def edited(**changes):
        sd = dict(official_tiny)
        for key, value in changes.items():
            if value is None:
                del sd[key]
            else:
                sd[key] = value
        return {'model': sd}

    (tmp / 'notes.txt').write_text('model weights, see README\n')
    seg = official.openseg_checkpoint(official_tiny)
    seg['state_dict']['module.ocr_distri_head.extra_proj.weight'] = torch.zeros(4, 4, 1, 1)
    pose = {'state_dict': {**official.backbone_only(official_tiny, 'backbone.'),
                           'keypoint_head.final_layer.weight': torch.zeros(17, 18, 1, 1),
                           'keypoint_head.final_layer.bias': torch.zeros(17),
                           'keypoint_head.deconv_layers.0.weight': torch.zeros(18, 256, 4, 4)}}
    resnet = {'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                             'bn1.weight': torch.zeros(64),
                             'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1)}}
    return {
        'text file': (tmp / 'notes.txt', [], r'not a PyTorch checkpoint'),
        'absent': (tmp / 'absent.pth', [], r'no such file'),
        'not a dict': (save('list.pth', [torch.zeros(3)]), [], r'not a state dict'),
        'resnet': (save('resnet.pth', resnet), [], r'not an HRFormer checkpoint.*conv1\.weight'),
        'other arch': (good, ['--arch', 'small'], r'another arch: tiny'),
        'missing': (save('missing.pth', edited(**{'stage3.1.branches.0.0.norm1.weight': None})),
                    [], r'1 keys missing.*stage3\.1\.branches\.0\.0\.norm1\.weight'),
        'left over': (save('extra.pth',
                           edited(**{'stage2.0.branches.0.0.surprise': torch.ones(3)})),
                      [], r'1 keys left over.*stage2\.0\.branches\.0\.0\.surprise'),
        'shape': (save('shape.pth', edited(**{'stage2.0.branches.0.0.mlp.fc1.weight':
                                              torch.zeros(64, 18, 1, 1)})),
                  [], r'shapes do not fit.*ffn\.fc1\.weight \(64, 18, 1, 1\) vs \(72, 18, 1, 1\)'),
        'seg head left over': (save('seg.pth', seg), [], r'left over.*extra_proj\.weight'),
        'pose deconvs': (save('pose.pth', pose), [], r'left over.*deconv_layers\.0\.weight'),
        'full classifier of pose': (save('pose2.pth', {'state_dict': {
            k: v for k, v in pose['state_dict'].items() if 'deconv' not in k}}),
            ['--full-classifier'], r'--full-classifier needs an official classification'),
    }


def test_bad_inputs_exit_2_one_line_no_output(official_tiny, good_source, tmp_path, capsys):
    for name, (src, args, pattern) in bad_cases(official_tiny, good_source, tmp_path).items():
        dst = tmp_path / 'out' / f'{name}.pth'
        rc, out, err = run_main(capsys, src, dst, *args)
        lines = err.strip().splitlines()
        assert rc == 2, (name, err)
        assert len(lines) == 1 and re.search(pattern, lines[0]), (name, err)
        assert lines[0].startswith('hrformer2mmseg: error: ') and out == ''
        assert not dst.exists(), name
    assert not list((tmp_path / 'out').glob('.*')) if (tmp_path / 'out').exists() else True


def test_failed_conversion_keeps_existing_dst(tmp_path, capsys, good_source):
    dst = tmp_path / 'dst.pth'
    dst.write_bytes(b'previous result')
    rc, _, err = run_main(capsys, good_source, dst, '--arch', 'base')
    assert rc == 2 and 'HRFormer-base' in err
    assert dst.read_bytes() == b'previous result'
    assert run_main(capsys, good_source, dst, '--window-size', 0)[0] == 2


@pytest.fixture
def fake_yacs():
    """A ``yacs.config.CfgNode`` stand-in (yacs is not installed) to pickle like the official
    cls code's training checkpoints do with their config."""
    package, module = types.ModuleType('yacs'), types.ModuleType('yacs.config')

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = 'yacs.config', 'CfgNode'
    module.CfgNode = CfgNode
    package.config = module
    sys.modules.update({'yacs': package, 'yacs.config': module})
    yield CfgNode
    del sys.modules['yacs'], sys.modules['yacs.config']


def test_pickled_config_needs_unsafe_load(official_tiny, tmp_path, capsys, fake_yacs):
    src = tmp_path / 'ckpt_epoch_299.pth'
    checkpoint = training_checkpoint(official_tiny)
    checkpoint['config'] = fake_yacs(MODEL=fake_yacs(TYPE='hrt'))
    torch.save(checkpoint, src)
    rc, _, err = run_main(capsys, src, tmp_path / 'a.pth')
    assert rc == 2 and not (tmp_path / 'a.pth').exists()
    assert 'yacs.config.CfgNode' in err and '--unsafe-load' in err and len(err.splitlines()) == 1
    rc, out, err = run_main(capsys, src, tmp_path / 'b.pth', '--unsafe-load')
    assert rc == 0, err
    meta = torch.load(tmp_path / 'b.pth', weights_only=True)['meta']
    assert meta['source_layout'] == 'official-cls'


def test_convert_function_errors():
    with pytest.raises(CheckpointError, match='not a state dict'):
        convert([1, 2, 3])
    with pytest.raises(CheckpointError, match='no state dict of tensors'):
        convert({'model': {'epoch': 3}})


@pytest.mark.parametrize('num_classes,first,last', [(19, 'road', 'bicycle'),
                                                    (150, 'wall', 'flag')])
def test_converted_seg_checkpoint_carries_its_data_set(official_tiny, tmp_path, capsys,
                                                       num_classes, first, last):
    # Class names and palette of the data set the head was trained on, for the inferencers.
    src, dst = tmp_path / 'hrt_ocr.pth', tmp_path / 'ocrnet.pth'
    torch.save(official.openseg_checkpoint(official_tiny, num_classes=num_classes), src)
    rc, _, err = run_main(capsys, src, dst)
    assert rc == 0, err
    meta = torch.load(dst, weights_only=True)['meta']['dataset_meta']
    assert len(meta['classes']) == len(meta['palette']) == num_classes
    assert (meta['classes'][0], meta['classes'][-1]) == (first, last)


def test_converted_pose_checkpoint_carries_coco_keypoints(tmp_path, capsys):
    theirs = mmpose_hrformer('tiny', 'bilinear', multiscale=False)
    sd = {f'backbone.{k}': v for k, v in theirs.state_dict().items()}
    sd['head.final_layer.weight'] = torch.randn(17, 18, 1, 1)
    sd['head.final_layer.bias'] = torch.randn(17)
    src, dst = tmp_path / 'pose.pth', tmp_path / 'td-hm.pth'
    torch.save({'state_dict': sd}, src)
    rc, _, err = run_main(capsys, src, dst)
    assert rc == 0, err
    meta = torch.load(dst, weights_only=True)['meta']['dataset_meta']  # numpy arrays inside
    assert meta['dataset_name'] == 'coco' and meta['num_keypoints'] == 17
    assert meta['keypoint_id2name'][0] == 'nose' and len(meta['sigmas']) == 17
