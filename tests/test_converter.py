"""tools/model_converters/hrformer2mmseg.py on random checkpoints of every official layout."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmhrformer import HRFormer
from mmhrformer.convert import ConversionError, convert

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'model_converters' / 'hrformer2mmseg.py'
KEYS_DIR = ROOT.parent / 'shared' / 'reference' / 'official_keys'
TINY_CHANNELS = (18, 36, 72, 144)


def official_cls(arch='tiny', seed=0):
    """Random official cls checkpoint: weights AND BN statistics random."""
    path = KEYS_DIR / f'hrt_{arch}_cls.tsv'
    if not path.exists():
        pytest.skip(f'{path} not found')
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for line in path.read_text().strip().splitlines():
        key, shape = line.split('\t')
        shape = [int(s) for s in shape.strip('[]').split(',') if s.strip()]
        if key.endswith('num_batches_tracked'):
            sd[key] = torch.tensor(100)
        elif key.endswith('relative_position_index'):
            w = int(round(shape[0]**0.5))
            from mmhrformer.hrformer import relative_position_index
            sd[key] = relative_position_index(w)
        elif key.endswith('running_var'):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return {'model': sd, 'epoch': 300}


def bn(prefix, n, g):
    return {f'{prefix}.weight': torch.rand(n, generator=g) + 0.5,
            f'{prefix}.bias': torch.randn(n, generator=g) * 0.1,
            f'{prefix}.running_mean': torch.randn(n, generator=g) * 0.1,
            f'{prefix}.running_var': torch.rand(n, generator=g) + 0.5,
            f'{prefix}.num_batches_tracked': torch.tensor(10)}


def official_seg(num_classes=5):
    """Random openseg OCRNet checkpoint around a tiny backbone (heads as in seg/lib/models)."""
    g = torch.Generator().manual_seed(1)
    backbone = {k: v for k, v in official_cls()['model'].items()
                if not k.startswith(('incre_modules', 'downsamp_modules', 'final_layer', 'classifier'))}
    sd = {f'module.backbone.{k}': v for k, v in backbone.items()}
    c_in = sum(TINY_CHANNELS)

    def conv(name, cout, cin, k, bias):
        sd[f'module.{name}.weight'] = torch.randn(cout, cin, k, k, generator=g) * 0.05
        if bias:
            sd[f'module.{name}.bias'] = torch.randn(cout, generator=g) * 0.1

    conv('conv3x3.0', 512, c_in, 3, True)
    sd.update({f'module.{k}': v for k, v in bn('conv3x3.1.0', 512, g).items()})
    ocb = 'ocr_distri_head.object_context_block'
    for branch in ('f_pixel', 'f_object'):
        conv(f'{ocb}.{branch}.0', 256, 512, 1, False)
        sd.update({f'module.{k}': v for k, v in bn(f'{ocb}.{branch}.1.0', 256, g).items()})
        conv(f'{ocb}.{branch}.2', 256, 256, 1, False)
        sd.update({f'module.{k}': v for k, v in bn(f'{ocb}.{branch}.3.0', 256, g).items()})
    conv(f'{ocb}.f_down.0', 256, 512, 1, False)
    sd.update({f'module.{k}': v for k, v in bn(f'{ocb}.f_down.1.0', 256, g).items()})
    conv(f'{ocb}.f_up.0', 512, 256, 1, False)
    sd.update({f'module.{k}': v for k, v in bn(f'{ocb}.f_up.1.0', 512, g).items()})
    conv('ocr_distri_head.conv_bn_dropout.0', 512, 1024, 1, False)
    sd.update({f'module.{k}': v for k, v in bn('ocr_distri_head.conv_bn_dropout.1.0', 512, g).items()})
    conv('cls_head', num_classes, 512, 1, True)
    conv('aux_head.0', 512, c_in, 3, True)
    sd.update({f'module.{k}': v for k, v in bn('aux_head.1.0', 512, g).items()})
    conv('aux_head.2', num_classes, 512, 1, True)
    return {'state_dict': sd}


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True)


def ours_to_mmpose(sd):
    """This package's names -> MMPose 1.x's (the test's own small mapping)."""
    out = {}
    for k, v in sd.items():
        if '.attn.q_proj.' in k:
            kk, vv = sd[k.replace('q_proj', 'k_proj')], sd[k.replace('q_proj', 'v_proj')]
            out[k.replace('.attn.q_proj.', '.attn.attn.qkv.')] = torch.cat([v, kk, vv])
        elif '.attn.k_proj.' in k or '.attn.v_proj.' in k:
            continue
        elif '.attn.out_proj.' in k:
            out[k.replace('.attn.out_proj.', '.attn.attn.proj.')] = v
        elif k.endswith('relative_position_bias_table'):
            out[k.replace('.attn.', '.attn.attn.')] = v
        else:
            out[k] = v
    return out


def mmpose_hrformer(upsample):
    from mmpose.models.backbones import HRFormer as MMPoseHRFormer
    extra = dict(drop_path_rate=0.0, with_rpe=True, upsample=upsample,
                 stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(2, ),
                             num_channels=(64, )))
    for s, modules in zip((2, 3, 4), (1, 3, 2)):
        extra[f'stage{s}'] = dict(num_modules=modules, num_branches=s, block='HRFORMERBLOCK',
                                  window_sizes=(7, ) * s, num_heads=(1, 2, 4, 8)[:s],
                                  mlp_ratios=(4, ) * s, num_blocks=(2, ) * s,
                                  num_channels=TINY_CHANNELS[:s], multiscale_output=True)
    return MMPoseHRFormer(extra=extra, norm_cfg=dict(type='BN'))


@pytest.mark.parametrize('mode,upsample', [
    ('bilinear', dict(mode='bilinear', align_corners=False)),
    ('nearest', dict(mode='nearest', align_corners=None)),
])
def test_official_cls_matches_mmpose_hrformer(tmp_path, mode, upsample):
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save(official_cls(), src)
    result = run_tool(src, dst)
    assert result.returncode == 0, result.stderr
    assert 'official-cls' in result.stdout and '2.572M' in result.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings'] == dict(with_rpe=True, upsample_mode='nearest',
                                                  arch='tiny', window_size=7)
    ours = HRFormer(arch='tiny', upsample_mode=mode).eval()
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    theirs = mmpose_hrformer(upsample)
    theirs.eval()  # MMPose's HRNet.train() returns None: no chaining
    missing, unexpected = theirs.load_state_dict(ours_to_mmpose(ckpt['state_dict']), strict=False)
    assert not unexpected and all(k.endswith('relative_position_index') for k in missing)
    x = torch.randn(1, 3, 224, 224)  # MMPose's fixed-factor upsampling needs exact halvings
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_official_cls_full_classifier_in_mmpretrain(tmp_path):
    from mmpretrain.registry import MODELS
    src, dst = tmp_path / 'official.pth', tmp_path / 'cls.pth'
    torch.save(official_cls(), src)
    assert run_tool(src, dst, '--full-classifier').returncode == 0
    model = MODELS.build(dict(type='ImageClassifier',
                              backbone=dict(type='mmhrformer.HRFormer', arch='tiny'),
                              neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=TINY_CHANNELS),
                              head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048)))
    model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)


def openseg_ocr_logits(sd, feats):
    """openseg's OCR head (HRT_*_OCR_V2), written out from its layout, on the backbone maps."""
    p = {k[len('module.'):]: v for k, v in sd.items() if k.startswith('module.')}
    h, w = feats[0].shape[-2:]
    x = torch.cat([feats[0]] + [F.interpolate(f, (h, w), mode='bilinear', align_corners=True)
                                for f in feats[1:]], 1)

    def conv_bn_relu(x, conv, norm, pad=0):
        x = F.conv2d(x, p[f'{conv}.weight'], p.get(f'{conv}.bias'), padding=pad)
        x = F.batch_norm(x, p[f'{norm}.running_mean'], p[f'{norm}.running_var'],
                         p[f'{norm}.weight'], p[f'{norm}.bias'], False, 0.0, 1e-5)
        return F.relu(x)

    aux = F.conv2d(conv_bn_relu(x, 'aux_head.0', 'aux_head.1.0', 1), p['aux_head.2.weight'],
                   p['aux_head.2.bias'])
    x = conv_bn_relu(x, 'conv3x3.0', 'conv3x3.1.0', 1)
    b, c = x.shape[:2]
    probs = aux.flatten(2).softmax(-1)  # B, K, HW
    context = (probs @ x.flatten(2).transpose(1, 2)).transpose(1, 2).unsqueeze(-1)  # B, C, K, 1
    o = 'ocr_distri_head.object_context_block'

    def two(x, name):
        return conv_bn_relu(conv_bn_relu(x, f'{o}.{name}.0', f'{o}.{name}.1.0'), f'{o}.{name}.2',
                            f'{o}.{name}.3.0')

    query = two(x, 'f_pixel').flatten(2).transpose(1, 2)
    key = two(context, 'f_object').flatten(2)
    value = conv_bn_relu(context, f'{o}.f_down.0', f'{o}.f_down.1.0').flatten(2).transpose(1, 2)
    sim = (query @ key * 256**-0.5).softmax(-1)
    ctx = (sim @ value).transpose(1, 2).reshape(b, -1, *x.shape[-2:])
    ctx = conv_bn_relu(ctx, f'{o}.f_up.0', f'{o}.f_up.1.0')
    out = conv_bn_relu(torch.cat([ctx, x], 1), 'ocr_distri_head.conv_bn_dropout.0',
                       'ocr_distri_head.conv_bn_dropout.1.0')
    return F.conv2d(out, p['cls_head.weight'], p['cls_head.bias']), aux


def test_official_seg_gives_openseg_logits(tmp_path):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    official = official_seg()
    src, dst = tmp_path / 'seg.pth', tmp_path / 'mmseg.pth'
    torch.save(official, src)
    result = run_tool(src, dst)
    assert result.returncode == 0, result.stderr
    state = torch.load(dst, weights_only=True)['state_dict']
    from mmengine.config import ConfigDict
    common = dict(in_channels=list(TINY_CHANNELS), in_index=(0, 1, 2, 3), num_classes=5,
                  input_transform='resize_concat', align_corners=True, dropout_ratio=-1,
                  norm_cfg=dict(type='BN', requires_grad=True))
    model = MODELS.build(ConfigDict(
        type='CascadeEncoderDecoder', num_stages=2,
        backbone=dict(type='HRFormer', arch='tiny'),
        decode_head=[dict(type='FCNHead', channels=512, num_convs=1, kernel_size=3,
                          concat_input=False, **common),
                     dict(type='OCRHead', channels=512, ocr_channels=256, **common)],
        test_cfg=dict(mode='whole'))).eval()
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = model.extract_feat(x)
        aux = model.decode_head[0].forward(feats)
        logits = model.decode_head[1].forward(feats, aux)
        expected, expected_aux = openseg_ocr_logits(official['state_dict'], feats)
    torch.testing.assert_close(aux, expected_aux, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_official_pose_to_topdown(tmp_path):
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    # Like the real ones: no cls head, and the last module fuses into branch 0 only.
    sd = {f'backbone.{k}': v for k, v in official_cls()['model'].items()
          if not k.startswith(('incre_modules', 'downsamp_modules', 'final_layer', 'classifier',
                               'stage4.1.fuse_layers.1', 'stage4.1.fuse_layers.2',
                               'stage4.1.fuse_layers.3'))}
    sd['keypoint_head.final_layer.weight'] = torch.randn(17, 18, 1, 1)
    sd['keypoint_head.final_layer.bias'] = torch.randn(17)
    src, dst = tmp_path / 'pose.pth', tmp_path / 'mmpose.pth'
    torch.save({'state_dict': sd}, src)
    result = run_tool(src, dst)
    assert result.returncode == 0, result.stderr
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings']['with_rpe'] is False
    assert ckpt['meta']['model_settings']['upsample_mode'] == 'bilinear'
    assert ckpt['meta']['model_settings']['out_indices'] == (0, )
    assert not any('relative_position_bias_table' in k for k in ckpt['state_dict'])
    model = MODELS.build(dict(
        type='TopdownPoseEstimator',
        backbone=dict(type='mmhrformer.HRFormer', arch='tiny', with_rpe=False,
                      upsample_mode='bilinear', out_indices=(0, )),
        head=dict(type='HeatmapHead', in_channels=18, out_channels=17, deconv_out_channels=None,
                  loss=dict(type='KeypointMSELoss')))).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 48), None, mode='tensor').shape == (1, 17, 16, 12)


def test_mmpose_layout_round_trip(tmp_path):
    ours = HRFormer(arch='tiny', upsample_mode='bilinear')
    theirs = mmpose_hrformer(dict(mode='bilinear', align_corners=False))
    theirs.load_state_dict(ours_to_mmpose(ours.state_dict()), strict=False)
    src, dst = tmp_path / 'mmpose.pth', tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in theirs.state_dict().items()}}, src)
    result = run_tool(src, dst)
    assert result.returncode == 0, result.stderr
    back = torch.load(dst, weights_only=True)['state_dict']
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())


def test_window_size_resizes_tables(tmp_path):
    src, dst = tmp_path / 'official.pth', tmp_path / 'w13.pth'
    torch.save(official_cls(), src)
    assert run_tool(src, dst, '--window-size', 13).returncode == 0
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['model_settings']['window_size'] == 13
    model = HRFormer(arch='tiny', window_size=13)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert ckpt['state_dict']['stage2.0.branches.0.0.attn.relative_position_bias_table'].shape == (625, 1)


def corrupt_cases(tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    good = tmp_path / 'good.pth'
    torch.save(official_cls(), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:5000])
    resnet = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7),
                               'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1)}}, resnet)
    missing = tmp_path / 'missing.pth'
    sd = official_cls()['model']
    del sd['stage3.1.branches.0.0.norm1.weight']
    torch.save({'model': sd}, missing)
    extra = tmp_path / 'extra.pth'
    sd = official_cls()['model']
    sd['stage2.0.branches.0.0.surprise'] = torch.zeros(3)
    torch.save({'model': sd}, extra)
    shape = tmp_path / 'shape.pth'
    sd = official_cls()['model']
    sd['stage2.0.branches.0.0.mlp.fc1.weight'] = torch.zeros(64, 18, 1, 1)
    torch.save({'model': sd}, shape)
    return [(text, [], 'not a PyTorch checkpoint'), (truncated, [], 'truncated'),
            (resnet, [], 'not an HRFormer checkpoint'), (good, ['--arch', 'small'], 'HRFormer-tiny'),
            (missing, [], 'missing.*stage3.1.branches.0.0.norm1.weight'),
            (extra, [], 'left over.*surprise'), (shape, [], 'shapes do not fit.*ffn.fc1.weight'),
            (tmp_path / 'absent.pth', [], 'no such file')]


def test_bad_inputs_exit_2_without_output(tmp_path):
    import re
    for src, extra_args, words in corrupt_cases(tmp_path):
        dst = tmp_path / 'out' / 'dst.pth'
        result = run_tool(src, dst, *extra_args)
        assert result.returncode == 2, (src.name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and re.search(words, lines[0]), (src.name, result.stderr)
        assert not dst.exists()
        assert not any(dst.parent.glob('.dst.pth.*')) if dst.parent.exists() else True


def test_pickled_objects_need_unsafe_load(tmp_path):
    src = tmp_path / 'with_objects.pth'
    ckpt = official_cls()
    ckpt['config'] = Path('configs')  # a non-tensor object, like the official yacs configs
    torch.save(ckpt, src)
    refused = run_tool(src, tmp_path / 'a.pth')
    assert refused.returncode == 2 and '--unsafe-load' in refused.stderr
    assert run_tool(src, tmp_path / 'b.pth', '--unsafe-load').returncode == 0


def test_convert_function_rejects_non_dict():
    with pytest.raises(ConversionError, match='not a state dict'):
        convert([1, 2, 3])
