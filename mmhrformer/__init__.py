"""HRFormer for OpenMMLab 1.x.

Importing this package (``custom_imports=dict(imports=['mmhrformer'])`` in a config) registers the
backbone and the classification neck into the MMSegmentation, MMPose and MMPretrain model
registries that are installed.

==========================  ================================================================
``models/backbones``        ``HRFormer``: the architecture (arch presets ``ARCH_ZOO``)
``models/necks``            ``HRFormerClsNeck``: the official ImageNet head as an MMPretrain neck
``layers``                  shared blocks and the fast kernels (BN folding, fused CPU convs, the
                            memory-lean FFN chain), with their switch ``set_fused_kernels``
``checkpoint``              official / MMPose checkpoint layouts and their conversion
``registry``                this package's scope and the registration into the hosts
==========================  ================================================================
"""
from .checkpoint import convert_official_backbone, convert_official_classifier
from .models import ARCH_ZOO, HRFormer, HRFormerClsNeck
from .registry import MODELS, register
from .version import __version__

# MMPose ships its own HRFormer: there, configs ask for ours as 'mmhrformer.HRFormer'.
register(HRFormer, bare_name_hosts=('mmseg', 'mmpretrain'))
register(HRFormerClsNeck, bare_name_hosts=('mmpretrain', ))

__all__ = [
    'ARCH_ZOO', 'HRFormer', 'HRFormerClsNeck', 'MODELS', 'convert_official_backbone',
    'convert_official_classifier', '__version__'
]
