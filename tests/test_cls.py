"""HRFormer ImageNet classification in MMPretrain: the neck, the official key mapping, the configs.

Everything runs the real MMPretrain on the CPU. The official parity test builds a random checkpoint
in the official classification layout (from the key lists in tests/data/official_keys), converts
it, and compares the logits with the official head written out by hand below.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from official_keys import official_shapes, random_official_state_dict

from mmhrformer import (ARCH_ZOO, HRFormer, HRFormerClsNeck, convert_official_backbone,
                        convert_official_classifier)

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs' / 'hrformer_cls'
BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked', 'relative_position_index')
# Sum of numel over the official checkpoints' parameter keys (with the head / backbone only).
OFFICIAL_PARAMS = {'tiny': 8_035_820, 'small': 13_544_882, 'base': 50_320_098}
OFFICIAL_BACKBONE_PARAMS = {'tiny': 2_572_388, 'small': 7_891_050, 'base': 44_040_666}
CONFIGS = {'tiny': 'hrformer-t_8xb128_in1k.py', 'small': 'hrformer-s_8xb128_in1k.py',
           'base': 'hrformer-b_8xb128_in1k.py'}
DROP_PATH = {'tiny': 0.0, 'small': 0.0, 'base': 0.2}


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def classifier_cfg(arch, num_classes=1000, **head):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='HRFormer', arch=arch),
        neck=dict(type='HRFormerClsNeck', in_channels=ARCH_ZOO[arch]['channels']),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=2048, **head))


def build(cfg):
    from mmpretrain.registry import MODELS
    return MODELS.build(cfg)


# ---- The official head, written out from the layout facts, official key names. ----

def bn(x, sd, p):
    return F.batch_norm(x, sd[p + 'running_mean'], sd[p + 'running_var'], sd[p + 'weight'],
                        sd[p + 'bias'], training=False, eps=1e-5)


def bottleneck_dwp(x, sd, p):
    planes = sd[p + 'conv2.weight'].shape[0]
    out = F.relu(bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1.'))
    out = F.conv2d(out, sd[p + 'conv2.weight'], padding=1, groups=planes)  # depthwise
    out = F.relu(bn(out, sd, p + 'bn2.'))
    out = bn(F.conv2d(out, sd[p + 'conv3.weight']), sd, p + 'bn3.')
    shortcut = bn(F.conv2d(x, sd[p + 'downsample.0.weight']), sd, p + 'downsample.1.')
    return F.relu(out + shortcut)


def official_head(feats, sd):
    y = bottleneck_dwp(feats[0], sd, 'incre_modules.0.0.')
    for i in range(3):
        p = f'downsamp_modules.{i}.'
        channels = sd[p + '0.weight'].shape[0]
        d = F.conv2d(y, sd[p + '0.weight'], sd[p + '0.bias'], stride=2, padding=1, groups=channels)
        d = F.conv2d(bn(d, sd, p + '1.'), sd[p + '2.weight'], sd[p + '2.bias'])
        d = F.relu(bn(d, sd, p + '3.'))
        y = bottleneck_dwp(feats[i + 1], sd, f'incre_modules.{i + 1}.0.') + d
    y = F.relu(bn(F.conv2d(y, sd['final_layer.0.weight'], sd['final_layer.0.bias']), sd,
                  'final_layer.1.'))
    y = F.avg_pool2d(y, kernel_size=y.shape[2:]).flatten(1)
    return F.linear(y, sd['classifier.weight'], sd['classifier.bias'])


# ---- Tests ----

@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_params_equal_official(arch):
    model = build(classifier_cfg(arch))
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]
    assert sum(p.numel() for p in model.backbone.parameters()) == OFFICIAL_BACKBONE_PARAMS[arch]
    assert model.head.fc.weight.shape == (1000, 2048)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_official_keys_map_one_to_one(arch):
    shapes = official_shapes(arch)
    assert sum(math.prod(s) for k, s in shapes.items()
               if not k.endswith(BUFFER_SUFFIXES)) == OFFICIAL_PARAMS[arch]
    official = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    converted = convert_official_classifier(official)
    # Every official key lands somewhere except the derived index buffers, with its shape.
    dropped = [k for k in shapes if k.endswith('relative_position_index')]
    assert len(converted) == len(shapes) - len(dropped)
    model = build(classifier_cfg(arch))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    assert converted['neck.incre_modules.0.0.downsample.0.weight'] is official[
        'incre_modules.0.0.downsample.0.weight']
    assert converted['head.fc.bias'] is official['classifier.bias']


@pytest.mark.parametrize('arch,size', [('tiny', (224, 224)), ('small', (96, 128)),
                                       ('base', (64, 64))])
def test_random_official_checkpoint_gives_official_logits(arch, size):
    official = random_official_state_dict(arch)
    # A whole official checkpoint (with the optimizer etc.) is accepted as well.
    converted = convert_official_classifier({'model': official, 'epoch': 299})
    model = build(classifier_cfg(arch)).eval()
    model.load_state_dict(converted, strict=True)

    backbone = HRFormer(arch=arch).eval()
    backbone.load_state_dict(convert_official_backbone(official), strict=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours = model(x, mode='tensor')
        feats = backbone(x)
        expected = official_head(feats, official)
    assert expected.shape == (2, 1000)
    assert expected.abs().max() > 1  # not a degenerate (near-zero) comparison
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)

    # In float64 the neck + head equal the official head to rounding: the BN folding and the key
    # mapping are exact, not merely close. Small random maps: float64 depthwise convs are slow.
    official64 = {k: v.double() if v.is_floating_point() else v for k, v in official.items()}
    feats64 = [f.new_empty(1, f.shape[1], 8 >> i, 8 >> i, dtype=torch.float64).normal_().abs() * 20
               for i, f in enumerate(feats)]
    with torch.no_grad():
        ours64 = model.head.fc.double()(model.neck.double()(feats64)[0])
    torch.testing.assert_close(ours64, official_head(feats64, official64), atol=1e-10, rtol=0)


def test_neck_shapes_and_gradients():
    channels = ARCH_ZOO['tiny']['channels']
    neck = HRFormerClsNeck(in_channels=channels)
    neck.init_weights()
    # Odd sizes: each stride-2 downsample rounds up, as the backbone's branches do.
    sizes = [(13, 21), (7, 11), (4, 6), (2, 3)]
    feats = tuple(torch.randn(3, c, *s) for c, s in zip(channels, sizes))
    out = neck(feats)
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == (3, 2048)
    out[0].sum().backward()
    assert all(p.grad is not None for p in neck.parameters())
    neck.eval()
    with torch.no_grad():
        assert neck(feats)[0].shape == (3, 2048)


def test_neck_folded_bn_equals_the_official_head():
    channels = (8, 16, 24, 32)
    neck = HRFormerClsNeck(in_channels=channels, head_planes=(4, 8, 16, 32), out_channels=64)
    for m in neck.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, std=0.2)
            m.running_mean.normal_(std=0.2)
            m.running_var.uniform_(0.5, 1.5)
    neck.eval()
    feats = [torch.randn(2, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate(channels)]
    sd = dict(neck.state_dict())  # the neck's names are the official ones
    sd['classifier.weight'] = torch.eye(64)
    sd['classifier.bias'] = torch.zeros(64)
    with torch.no_grad():
        # The official head with an identity classifier is the pooled neck output.
        torch.testing.assert_close(neck(feats)[0], official_head(feats, sd), atol=1e-5, rtol=1e-5)


def test_neck_errors():
    with pytest.raises(ValueError, match='one head_planes entry per input branch'):
        HRFormerClsNeck(in_channels=(18, 36, 72))
    with pytest.raises(ValueError, match='positive ints'):
        HRFormerClsNeck(in_channels=(18, 0, 72, 144))
    neck = HRFormerClsNeck(in_channels=(18, 36, 72, 144))
    with pytest.raises(ValueError, match='expected 4 maps, got 3'):
        neck([torch.rand(1, c, 8, 8) for c in (18, 36, 72)])


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_configs_follow_the_official_recipe(arch):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG_DIR / CONFIGS[arch])
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmhrformer'], allow_failed_imports=False)
    assert cfg.model.backbone.arch == arch
    assert cfg.model.backbone.drop_path_rate == DROP_PATH[arch]
    assert tuple(cfg.model.neck.in_channels) == ARCH_ZOO[arch]['channels']
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 1024
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == pytest.approx(5e-4 * 1024 / 512)
    assert opt.optimizer.weight_decay == 0.05 and opt.clip_grad.max_norm == 5.0
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 20 and cosine.begin == 20
    assert cosine.type == 'CosineAnnealingLR' and cosine.end == 300
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert [a.alpha for a in cfg.model.train_cfg.augments] == [0.8, 1.0]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['RandAugment'].magnitude_level == 9
    assert pipeline['RandAugment'].magnitude_std == 0.5
    assert pipeline['RandomErasing'].erase_prob == 0.25


def test_weight_decay_groups():
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(CONFIG_DIR / CONFIGS['tiny'])
    model = build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    names = dict(model.named_parameters())
    assert len(decay) == len(names)
    for name, p in names.items():
        no_decay = p.ndim == 1 or name.endswith('relative_position_bias_table')
        assert decay[id(p)] == (0.0 if no_decay else 0.05), name


def test_config_model_loss_and_predict():
    from mmengine.config import Config
    from mmpretrain.structures import DataSample
    cfg = Config.fromfile(CONFIG_DIR / CONFIGS['tiny'])
    # As MMEngine's Runner does: the config's data_preprocessor goes into the model.
    model = build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=[DataSample().set_gt_label(i) for i in (3, 999)])
    batch = model.data_preprocessor(data, training=True)  # Mixup / CutMix happen here
    assert batch['data_samples'][0].gt_score.shape == (1000, )
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    assert model.neck.final_layer[0].weight.grad is not None
    assert model.backbone.conv1.weight.grad is not None

    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(data, training=False), mode='predict')
    assert len(preds) == 2
    assert preds[0].pred_score.shape == (1000, )
    assert preds[0].pred_score.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_inferencer_runs_on_a_converted_checkpoint(tmp_path):
    from mmpretrain.apis import ImageClassificationInferencer
    converted = convert_official_classifier(random_official_state_dict('tiny'))
    ckpt = tmp_path / 'hrformer-t_converted.pth'
    torch.save({'state_dict': converted, 'meta': {}}, ckpt)
    inferencer = ImageClassificationInferencer(
        model=str(CONFIG_DIR / CONFIGS['tiny']), pretrained=str(ckpt), device='cpu')
    state = inferencer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in converted.items())
    image = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    result = inferencer(image)[0]
    assert len(result['pred_scores']) == 1000
    assert 0 <= result['pred_label'] < 1000
