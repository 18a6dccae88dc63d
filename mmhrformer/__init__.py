"""HRFormer for OpenMMLab 1.x.

Importing this package (``custom_imports=dict(imports=['mmhrformer'])`` in a config) registers the
backbone and the classification neck into the MMSegmentation, MMPose and MMPretrain model
registries that are installed, and lets ``torch.load(weights_only=True)`` read MMEngine's training
checkpoints (:mod:`mmhrformer.checkpoint.safe_globals`), so that resuming, testing and the
inferencers work on torch >= 2.6 without turning the safety off.

Rooms, top to bottom; every import, at module level or inside a function, points down (or stays
in its room), which ``tests/test_import_structure.py`` checks:

==========================  ================================================================
``cli``                     the commands: converter, export, demo, the hosts' train / test tools
``deploy``                  ONNX export of whole host models, running and drawing the files
``apis``                    which host a config is for; the demos' images in, pictures out
``checkpoint``              official / MMPose checkpoint layouts, their conversion, and their
                            mapping on load, plugged into the backbone from above
``engine``                  ``CompileAdviceHook``: MMEngine's ``compile`` as the compiled training
                            that pays on the device (eager on a CPU, CUDA graphs on CUDA)
``registry``                this package's scope and the registration into the hosts
``models``                  ``HRFormer`` (arch presets ``ARCH_ZOO``), ``HRFormerClsNeck``
``layers``                  shared blocks and the fast kernels (BN folding, fused CPU convs, the
                            memory-lean FFN chain), with their switch ``set_fused_kernels``
``version``                 the version string
==========================  ================================================================

Importing the package changes three things outside it: the hosts' ``MODELS`` registries gain
``HRFormer`` / ``HRFormerClsNeck``, torch's safe loading accepts MMEngine's checkpoint types, and
torch's module-registration hook gives any module that receives an ``HRFormer`` as a child a load
pre-hook mapping whole official checkpoints (:func:`mmhrformer.checkpoint.install_layout_loading`).
"""
from .checkpoint import (allow_mmengine_checkpoints, convert_official_backbone,
                         convert_official_classifier, install_layout_loading)
from .engine import CompileAdviceHook
from .models import ARCH_ZOO, HRFormer, HRFormerClsNeck
from .registry import MODELS, register
from .version import __version__

# MMPose ships its own HRFormer: there, configs ask for ours as 'mmhrformer.HRFormer'.
register(HRFormer, bare_name_hosts=('mmseg', 'mmpretrain'))
register(HRFormerClsNeck, bare_name_hosts=('mmpretrain', ))
allow_mmengine_checkpoints()
install_layout_loading()

__all__ = [
    'ARCH_ZOO', 'CompileAdviceHook', 'HRFormer', 'HRFormerClsNeck', 'MODELS',
    'convert_official_backbone', 'convert_official_classifier', '__version__'
]
