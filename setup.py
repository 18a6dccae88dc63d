from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
version = {}
exec((ROOT / 'mmhrformer' / 'version.py').read_text(), version)

setup(
    name='mmhrformer',
    version=version['__version__'],
    description='HRFormer (High-Resolution Transformer) for MMSegmentation, MMPose and MMPretrain',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['mmhrformer', 'mmhrformer.*']),
    python_requires='>=3.9',
    # The OpenMMLab hosts are optional: the backbone registers into whichever are installed.
    # requirements/stack.txt pins the tested stack (tools/install_env.sh installs it).
    # torch >= 2.5: SDPA with a float mask, torch.compiler.is_compiling,
    # torch.is_autocast_enabled(device), torch.serialization.get_unsafe_globals_in_checkpoint.
    install_requires=['torch>=2.5', 'mmengine>=0.10'],
    extras_require={'onnx': ['onnx', 'onnxruntime']},
)
