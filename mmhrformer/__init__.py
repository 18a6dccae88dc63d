"""HRFormer for OpenMMLab 1.x.

Importing this package (``custom_imports=dict(imports=['mmhrformer'])`` in a config) registers the
backbone and the classification neck into the MMSegmentation, MMPose and MMPretrain model
registries that are installed, and lets ``torch.load(weights_only=True)`` read MMEngine's training
checkpoints (:mod:`mmhrformer.checkpoint.safe_globals`), so that resuming, testing and the
inferencers work on torch >= 2.6 without turning the safety off.

==========================  ================================================================
``models/backbones``        ``HRFormer``: the architecture (arch presets ``ARCH_ZOO``)
``models/necks``            ``HRFormerClsNeck``: the official ImageNet head as an MMPretrain neck
``layers``                  shared blocks and the fast kernels (BN folding, fused CPU convs, the
                            memory-lean FFN chain), with their switch ``set_fused_kernels``
``checkpoint``              official / MMPose checkpoint layouts and their conversion
``engine``                  ``CompileAdviceHook``: what ``torch.compile`` costs, told when it is on
``registry``                this package's scope and the registration into the hosts
==========================  ================================================================
"""
from .checkpoint import (allow_mmengine_checkpoints, convert_official_backbone,
                         convert_official_classifier)
from .engine import CompileAdviceHook
from .models import ARCH_ZOO, HRFormer, HRFormerClsNeck
from .registry import MODELS, register
from .version import __version__

# MMPose ships its own HRFormer: there, configs ask for ours as 'mmhrformer.HRFormer'.
register(HRFormer, bare_name_hosts=('mmseg', 'mmpretrain'))
register(HRFormerClsNeck, bare_name_hosts=('mmpretrain', ))
allow_mmengine_checkpoints()

__all__ = [
    'ARCH_ZOO', 'CompileAdviceHook', 'HRFormer', 'HRFormerClsNeck', 'MODELS',
    'convert_official_backbone', 'convert_official_classifier', '__version__'
]
