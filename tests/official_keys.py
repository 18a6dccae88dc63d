"""The official classification checkpoints' key lists, shared by the tests.

``tests/data/official_keys/*.tsv`` (key, shape) were listed from the released HRFormer-T/S/B
ImageNet checkpoints; the repo ships them so that the layout tests run anywhere, CI included.
"""
import math
from pathlib import Path

import torch

from official_hrt import relative_position_index  # tests/official_hrt.py

KEYS_DIR = Path(__file__).resolve().parent / 'data' / 'official_keys'
ARCH_FILES = {'tiny': 'hrt_tiny_cls.tsv', 'small': 'hrt_small_cls.tsv', 'base': 'hrt_base_cls.tsv'}


def official_shapes(arch):
    """Key -> shape of the official classification checkpoint (the whole model)."""
    path = KEYS_DIR / ARCH_FILES[arch]
    shapes = {}
    for line in path.read_text().strip().splitlines():
        key, shape = line.split('\t')
        shapes[key] = tuple(int(s) for s in shape.strip('[]').split(',') if s.strip())
    return shapes


def random_official_state_dict(arch, seed=1):
    """Random weights in the official classification layout, BN running statistics random too.

    Scaled as trained weights are (fan-in for conv / linear, BN weights near 1), so outputs stay
    at unit scale, where float32 rounding is ~1e-6.
    """
    shapes = official_shapes(arch)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        prefix = key.rsplit('.', 1)[0] + '.'
        is_bn = prefix + 'running_mean' in shapes
        if key.endswith('num_batches_tracked'):
            value = torch.tensor(1000)
        elif key.endswith('relative_position_index'):
            value = relative_position_index(math.isqrt(shape[0]))
        elif key.endswith('running_var'):
            value = torch.rand(shape, generator=g) + 0.5
        elif key.endswith('running_mean'):
            value = torch.randn(shape, generator=g) * 0.2
        elif key == 'classifier.weight':
            # Random BN statistics let the pooled features grow to ~100; a small classifier keeps
            # the logits at a realistic scale (a few units).
            value = torch.randn(shape, generator=g) * 1e-3
        elif is_bn and key.endswith('weight'):
            value = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2 and not key.endswith('relative_position_bias_table'):
            value = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:  # biases, LayerNorm affine, relative position bias tables
            value = torch.randn(shape, generator=g) * 0.2
            if key.endswith('weight'):
                value += 1
        sd[key] = value
    return sd
