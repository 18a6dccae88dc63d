"""What an exported file says about itself: ``metadata_props`` written at export, read at run time.

ONNX metadata is string to string. Each value here is JSON; the data set's metainfo (class names,
palette, keypoint names, skeleton, colours) holds numpy arrays and dicts keyed by ints, which plain
JSON would turn into lists and string keys, so those are tagged and restored exactly: a file
exported from a checkpoint draws the same pictures without the checkpoint.
"""
import json
from typing import Any, Dict

import numpy as np


def encode(value: Any) -> str:
    """JSON text of ``value``, numpy arrays and int-keyed dicts tagged (see :func:`decode`)."""
    # default=repr: a config may name a class object where it usually names a type string
    return json.dumps(_tag(value), separators=(',', ':'), default=repr)


def decode(text: str) -> Any:
    """The value :func:`encode` wrote: arrays with their dtype, dict keys with their type."""
    return json.loads(text, object_hook=_untag)


def write(model, props: Dict[str, Any]) -> None:
    """Sets ``props`` (values JSON-encoded) as ``model``'s (an ``onnx.ModelProto``) metadata."""
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, encode(value)


def read(model_or_session) -> Dict[str, Any]:
    """The metadata of an ``onnx.ModelProto`` or an ``onnxruntime.InferenceSession``, decoded."""
    if hasattr(model_or_session, 'get_modelmeta'):
        raw = model_or_session.get_modelmeta().custom_metadata_map
    else:
        raw = {p.key: p.value for p in model_or_session.metadata_props}
    return {key: decode(value) for key, value in raw.items()}


def _tag(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {'__ndarray__': value.tolist(), 'dtype': str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _tag(v) for k, v in value.items()}
        return {'__items__': [[_tag(k), _tag(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    return value


def _untag(obj: dict) -> Any:
    if '__ndarray__' in obj:
        return np.array(obj['__ndarray__'], dtype=obj['dtype'])
    if '__items__' in obj:
        return {_hashable(k): v for k, v in obj['__items__']}
    return obj


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
