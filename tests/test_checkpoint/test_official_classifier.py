"""Official ImageNet checkpoints in MMPretrain's ImageClassifier: parameter counts, the key
mapping one to one, and the official logits from a random official checkpoint."""
import math

import pytest
import torch

import official  # tests/official.py
from mmhrformer import ARCH_ZOO, HRFormer, convert_official_backbone, convert_official_classifier

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py


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


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_params_equal_official(arch):
    model = build(classifier_cfg(arch))
    assert sum(p.numel() for p in model.parameters()) == official.PARAMS[arch]
    assert sum(p.numel() for p in model.backbone.parameters()) == official.BACKBONE_PARAMS[arch]
    assert model.head.fc.weight.shape == (1000, 2048)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_official_keys_map_one_to_one(arch):
    shapes = official.key_shapes(arch)
    assert sum(math.prod(s) for k, s in shapes.items()
               if not k.endswith(official.BUFFER_SUFFIXES)) == official.PARAMS[arch]
    source = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    converted = convert_official_classifier(source)
    # Every official key lands somewhere except the derived index buffers, with its shape.
    dropped = [k for k in shapes if k.endswith('relative_position_index')]
    assert len(converted) == len(shapes) - len(dropped)
    model = build(classifier_cfg(arch))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    assert converted['neck.incre_modules.0.0.downsample.0.weight'] is source[
        'incre_modules.0.0.downsample.0.weight']
    assert converted['head.fc.bias'] is source['classifier.bias']


@pytest.mark.parametrize('arch,size', [('tiny', (224, 224)), ('small', (96, 128)),
                                       ('base', (64, 64))])
def test_random_official_checkpoint_gives_official_logits(arch, size):
    source = official.random_state_dict(arch)
    # A whole official checkpoint (with the optimizer etc.) is accepted as well.
    converted = convert_official_classifier({'model': source, 'epoch': 299})
    model = build(classifier_cfg(arch)).eval()
    model.load_state_dict(converted, strict=True)

    backbone = HRFormer(arch=arch).eval()
    backbone.load_state_dict(convert_official_backbone(source), strict=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours = model(x, mode='tensor')
        feats = backbone(x)
        expected = official.cls_head(feats, source)
    assert expected.shape == (2, 1000)
    assert expected.abs().max() > 1  # not a degenerate (near-zero) comparison
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)

    # In float64 the neck + head equal the official head to rounding: the BN folding and the key
    # mapping are exact, not merely close. Small random maps: float64 depthwise convs are slow.
    source64 = {k: v.double() if v.is_floating_point() else v for k, v in source.items()}
    feats64 = [f.new_empty(1, f.shape[1], 8 >> i, 8 >> i, dtype=torch.float64).normal_().abs() * 20
               for i, f in enumerate(feats)]
    with torch.no_grad():
        ours64 = model.head.fc.double()(model.neck.double()(feats64)[0])
    torch.testing.assert_close(ours64, official.cls_head(feats64, source64), atol=1e-10, rtol=0)
