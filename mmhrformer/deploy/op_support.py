"""What TensorRT 10's ONNX parser accepts, checked on an exported file without TensorRT.

No GPU is at hand where this package is tested, so TensorRT engines are not built here. What can be
checked is the file: every op type in the graph is one that onnx-tensorrt's parser implements, with
the attributes it supports, at an opset it reads. The table is the "Y" rows of onnx-tensorrt's
``docs/operators.md`` on its ``release/10.1-GA`` branch (commit 96e7811, "TensorRT 10.0 supports
operators in the inclusive range of opset 9 to opset 20").
"""
from typing import Dict, Iterable, List

# onnx-tensorrt release/10.1-GA docs/operators.md, every operator marked supported (Y).
TENSORRT10_OPS = frozenset('''
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
GreaterOrEqual GridSample GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If
ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization
Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu
QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter
ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu
Unsqueeze Upsample Where Xor
'''.split())

TENSORRT10_OPSETS = range(9, 21)

# The Resize row's restrictions (modes TensorRT implements; no antialiasing).
RESIZE_ATTRIBUTES = {
    'coordinate_transformation_mode': {'half_pixel', 'pytorch_half_pixel', 'tf_half_pixel_for_nn',
                                       'asymmetric', 'align_corners'},
    'mode': {'nearest', 'linear'},
    'nearest_mode': {'floor', 'ceil', 'round_prefer_floor', 'round_prefer_ceil'},
    'antialias': {0},
}

# Rows whose `axes` input "must be an initializer" (its position in the node's inputs). The parser
# turns Constant nodes into weights too, so their outputs count.
CONSTANT_AXES = {'Slice': 3, 'Squeeze': 1, 'Unsqueeze': 1, 'Pad': 3, 'CumSum': 1, 'ReduceL1': 1,
                 'ReduceL2': 1, 'ReduceLogSum': 1, 'ReduceLogSumExp': 1, 'ReduceMax': 1,
                 'ReduceMean': 1, 'ReduceMin': 1, 'ReduceProd': 1, 'ReduceSum': 1,
                 'ReduceSumSquare': 1}


def op_types(model) -> Dict[str, int]:
    """How often each op type occurs in ``model`` (an ``onnx.ModelProto``), subgraphs included."""
    counts: Dict[str, int] = {}
    for node in _nodes(model.graph):
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def tensorrt10_problems(model) -> List[str]:
    """What in ``model`` TensorRT 10's ONNX parser does not accept; empty when it all is.

    Args:
        model (onnx.ModelProto): An exported file, loaded.

    Returns:
        list[str]: One line per problem: an op type outside :data:`TENSORRT10_OPS`, a Resize
        attribute outside the documented modes, ``axes`` computed at run time where the list
        wants a constant, an opset outside 9-20, a domain other than ONNX's.
    """
    import onnx
    problems = []
    constants = constant_names(model.graph)
    for opset in model.opset_import:
        if opset.domain in ('', 'ai.onnx') and opset.version not in TENSORRT10_OPSETS:
            problems.append(f'opset {opset.version} (TensorRT 10 reads 9-20)')
    for node in _nodes(model.graph):
        if node.domain not in ('', 'ai.onnx'):
            problems.append(f'{node.op_type} of domain {node.domain!r} ({node.name})')
        elif node.op_type not in TENSORRT10_OPS:
            problems.append(f'{node.op_type} is not in TensorRT 10\'s operator list ({node.name})')
        elif node.op_type == 'Resize':
            for attr in node.attribute:
                allowed = RESIZE_ATTRIBUTES.get(attr.name)
                value = onnx.helper.get_attribute_value(attr)
                value = value.decode() if isinstance(value, bytes) else value
                if allowed is not None and value not in allowed:
                    problems.append(f'Resize {attr.name}={value!r} ({node.name})')
        axes = CONSTANT_AXES.get(node.op_type)
        if axes is not None and len(node.input) > axes and node.input[axes] and \
                node.input[axes] not in constants:
            problems.append(f'{node.op_type} with axes computed at run time ({node.name})')
    return sorted(set(problems))


def constant_names(graph) -> set:
    """Names of the values known when the engine is built: initializers, Constant outputs and
    Identity copies of them."""
    names = {init.name for init in graph.initializer}
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == 'Constant' or (node.op_type == 'Identity' and node.input[0] in names):
            names.update(node.output)
    return names


def _nodes(graph) -> Iterable:
    """Every node of ``graph`` and of the subgraphs its nodes hold (If / Loop bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField('g') else list(attr.graphs):
                yield from _nodes(sub)
