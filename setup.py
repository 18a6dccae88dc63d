from setuptools import find_packages, setup

setup(
    name='mmhrformer',
    version='0.1.0',
    description='HRFormer (High-Resolution Transformer) for MMSegmentation, MMPose and MMPretrain',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['mmhrformer', 'mmhrformer.*']),
    python_requires='>=3.8',
    # The OpenMMLab hosts are optional: the backbone registers into whichever are installed.
    # requirements/stack.txt pins the tested stack (tools/install_env.sh installs it).
    install_requires=['torch>=1.13', 'mmengine>=0.10'],
    extras_require={'onnx': ['onnx', 'onnxruntime']},
)
