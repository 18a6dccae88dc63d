"""The official classification checkpoints' key lists, shared by the tests.

``tests/data/official_keys/*.tsv`` (key, shape) were listed from the released HRFormer-T/S/B
ImageNet checkpoints; the repo ships them so that the layout tests run anywhere, CI included.
"""
from pathlib import Path

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
