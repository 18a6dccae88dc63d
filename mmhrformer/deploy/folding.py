"""Constant folding of an exported graph: every node whose value is known before run time.

TorchScript's exporter folds a fixed list of op types on constants. It leaves what ``F.pad``
builds its pads with (ConstantOfShape, Concat, Slice, Cast on constants), ``Flatten`` of folded
weights, ``Identity`` copies of shared constants and, at a fixed size, the sizes that host code
reads from tensors (MMSeg's heads, ``tensor.shape``): Shape, Gather, Unsqueeze, Cast, Div
chains. Runtimes fold them again at every load, and a graph optimizer that does not (a
TensorRT parser, a reader of the file) sees thousands of nodes. :func:`fold_constants` evaluates
every node whose inputs are all constants, or whose input's shape onnx's shape inference fixes
(``Shape``), with onnx's reference evaluator, and keeps its value as an initializer: in a
fixed-size file no shape arithmetic is left; in a free-size one only what the free dimensions
need.
"""
from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

# A folded value may be as large as the node's inputs together (Flatten, Transpose or Identity
# of a weight) or this many elements, not more: a folded Expand or Tile could otherwise store an
# activation-sized tensor in the file.
MAX_FOLDED = 1 << 16


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every node computable before run time replaced by its value.

    Args:
        model (onnx.ModelProto): An exported model (default domain ops; others are kept).

    Returns:
        onnx.ModelProto: The same model, changed in place.
    """
    graph = model.graph
    opset = {o.domain or '': o.version for o in model.opset_import}
    known = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = static_shapes(model)
    kept, folded = [], {}
    for node in graph.node:
        values = _evaluate(node, known, shapes, opset)
        if values is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            known[name] = folded[name] = value
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    initializers = [init for init in graph.initializer if init.name in used]
    initializers += [numpy_helper.from_array(np.asarray(value), name)
                     for name, value in folded.items() if name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return model


def static_shapes(model: onnx.ModelProto) -> Dict[str, Sequence[int]]:
    """Every value's shape that shape inference fixes (all dimensions numbers)."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor = info.type.tensor_type
        if tensor.HasField('shape') and all(d.HasField('dim_value') for d in tensor.shape.dim):
            shapes[info.name] = [d.dim_value for d in tensor.shape.dim]
    return shapes


def _evaluate(node: onnx.NodeProto, known: Dict[str, np.ndarray],
              shapes: Dict[str, Sequence[int]], opset: Dict[str, int]) -> Optional[list]:
    """The node's outputs if they are known before run time and small, else None."""
    if node.domain not in ('', 'ai.onnx') or any(a.type in (onnx.AttributeProto.GRAPH,
                                                            onnx.AttributeProto.GRAPHS)
                                                 for a in node.attribute):
        return None
    if node.op_type == 'Shape' and node.input[0] in shapes:
        attrs = {a.name: a.i for a in node.attribute}
        dims = shapes[node.input[0]]
        return [np.array(dims[attrs.get('start', 0):attrs.get('end', len(dims))],
                         dtype=np.int64)]
    inputs = [name for name in node.input if name]
    if not all(name in known for name in inputs) or node.op_type.startswith('Random'):
        return None
    values = ReferenceEvaluator(node, opsets=opset).run(None, {n: known[n] for n in inputs})
    limit = max(MAX_FOLDED, sum(np.asarray(known[n]).size for n in inputs))
    if any(np.asarray(v).size > limit for v in values):
        return None
    return list(values)
