"""The models: architecture only (kernels and shared blocks are in :mod:`mmhrformer.layers`)."""
from .backbones import ARCH_ZOO, HRFormer
from .necks import HRFormerClsNeck

__all__ = ['ARCH_ZOO', 'HRFormer', 'HRFormerClsNeck']
