"""The official checkpoints' key lists (../shared/reference/official_keys), shared by the tests."""
from pathlib import Path

import pytest

KEYS_DIR = Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'official_keys'
ARCH_FILES = {'tiny': 'hrt_tiny_cls.tsv', 'small': 'hrt_small_cls.tsv', 'base': 'hrt_base_cls.tsv'}


def official_shapes(arch):
    """Key -> shape of the official classification checkpoint (the whole model)."""
    path = KEYS_DIR / ARCH_FILES[arch]
    if not path.exists():
        pytest.skip(f'{path} not found (the shared reference folder sits beside the checkout)')
    shapes = {}
    for line in path.read_text().strip().splitlines():
        key, shape = line.split('\t')
        shapes[key] = tuple(int(s) for s in shape.strip('[]').split(',') if s.strip())
    return shapes
