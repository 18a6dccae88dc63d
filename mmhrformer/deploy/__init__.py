"""Deployment: ONNX files of whole host models, preprocessing inside, verified against PyTorch.

``graphs`` wraps a segmentor / pose estimator / classifier with its data preprocessor's
normalisation; ``host_patches`` changes host code for the duration of an export only;
``onnx_export`` exports, checks and compares; ``folding`` folds what is computable before run
time; ``op_support`` checks a file against TensorRT 10's
ONNX operator list; ``metadata`` writes and reads what a file says about itself;
``onnx_runtime`` runs a file; ``onnx_demo`` draws its predictions as the PyTorch demo does.
"""
from .onnx_export import ExportError, export_onnx
from .onnx_runtime import OnnxModel, OnnxRuntimeError

__all__ = ['ExportError', 'OnnxModel', 'OnnxRuntimeError', 'export_onnx']
