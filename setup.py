import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
version = {}
exec((ROOT / 'mmhrformer' / 'version.py').read_text(), version)

# What mim reads from an installed package (``mim search``, ``mim train mmhrformer <config name>``),
# copied into the built package as mmhrformer/.mim at build time, as OpenMMLab packages ship them.
# demo/data: the quickstart configs' tiny data sets (under 1 MB), found relative to the configs.
MIM_FILES = ('configs', 'model-index.yml', 'tools/train.py', 'tools/test.py',
             'tools/model_converters/hrformer2mmseg.py', 'demo/data')


class BuildWithMim(build_py):

    def run(self):
        super().run()
        mim = Path(self.build_lib) / 'mmhrformer' / '.mim'
        for name in MIM_FILES:
            src, dst = ROOT / name, mim / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns('__pycache__'))
            else:
                shutil.copyfile(src, dst)


setup(
    name='mmhrformer',
    version=version['__version__'],
    description='HRFormer (High-Resolution Transformer) for MMSegmentation, MMPose and MMPretrain',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['mmhrformer', 'mmhrformer.*']),
    cmdclass={'build_py': BuildWithMim},
    entry_points={'console_scripts': [
        'hrformer2mmseg = mmhrformer.cli.hrformer2mmseg:main',
        'hrformer-demo = mmhrformer.cli.demo:main',
        'hrformer-export = mmhrformer.cli.export:main',
    ]},
    python_requires='>=3.9',
    # The OpenMMLab hosts are optional: the backbone registers into whichever are installed.
    # requirements/stack.txt pins the tested stack (tools/install_env.sh installs it).
    # torch >= 2.5: SDPA with a float mask, torch.compiler.is_compiling,
    # torch.is_autocast_enabled(device), torch.serialization.get_unsafe_globals_in_checkpoint.
    # setuptools < 81: MMEngine 0.10.7 and mim 0.3.9 import pkg_resources at run time.
    install_requires=['torch>=2.5', 'mmengine>=0.10', 'setuptools<81'],
    # hrformer-export needs onnx + onnxruntime; OpenVINO runs the same files (docs/deployment.md).
    extras_require={'onnx': ['onnx', 'onnxruntime'],
                    'openvino': ['onnx', 'onnxruntime', 'openvino>=2024.0']},
)
