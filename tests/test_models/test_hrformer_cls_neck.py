"""The classification neck: shapes, gradients, the official head's numbers, errors."""
import pytest
import torch

import official  # tests/official.py
from builders import randomize_bn  # tests/builders.py
from mmhrformer import ARCH_ZOO, HRFormerClsNeck


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
    randomize_bn(neck).eval()
    feats = [torch.randn(2, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate(channels)]
    sd = dict(neck.state_dict())  # the neck's names are the official ones
    sd['classifier.weight'] = torch.eye(64)
    sd['classifier.bias'] = torch.zeros(64)
    with torch.no_grad():
        # The official head with an identity classifier is the pooled neck output.
        torch.testing.assert_close(neck(feats)[0], official.cls_head(feats, sd), atol=1e-5, rtol=1e-5)


def test_neck_errors():
    with pytest.raises(ValueError, match='one head_planes entry per input branch'):
        HRFormerClsNeck(in_channels=(18, 36, 72))
    with pytest.raises(ValueError, match='positive ints'):
        HRFormerClsNeck(in_channels=(18, 0, 72, 144))
    neck = HRFormerClsNeck(in_channels=(18, 36, 72, 144))
    with pytest.raises(ValueError, match='expected 4 maps, got 3'):
        neck([torch.rand(1, c, 8, 8) for c in (18, 36, 72)])
