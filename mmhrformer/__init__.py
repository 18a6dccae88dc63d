"""HRFormer for OpenMMLab 1.x.

Importing this package (``custom_imports=dict(imports=['mmhrformer'])`` in a config) registers the
backbone into the MMSegmentation, MMPose and MMPretrain model registries that are installed.
"""
from .cls_neck import HRFormerClsNeck, convert_official_classifier
from .hrformer import ARCH_ZOO, HRFormer, convert_official_backbone
from .registry import MODELS, register

__version__ = '0.1.0'

# MMPose ships its own HRFormer: there, configs ask for ours as 'mmhrformer.HRFormer'.
register(HRFormer, bare_name_hosts=('mmseg', 'mmpretrain'))
register(HRFormerClsNeck, bare_name_hosts=('mmpretrain', ))

__all__ = [
    'ARCH_ZOO', 'HRFormer', 'HRFormerClsNeck', 'MODELS', 'convert_official_backbone',
    'convert_official_classifier', '__version__'
]
