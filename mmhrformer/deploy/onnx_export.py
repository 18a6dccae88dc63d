"""A config and a checkpoint to a verified ONNX file: build, wrap, export, check, compare.

:func:`export_onnx` builds the host model of a config (MMSeg, MMPose or MMPretrain, as its
``default_scope`` says), loads the checkpoint strictly, wraps it with its preprocessing
(:mod:`.graphs`), exports it, checks the file (``onnx.checker``, TensorRT 10's operator list),
runs it in onnxruntime against PyTorch and writes it with its metadata (:mod:`.metadata`).
Without ``dynamic`` the model reads its sizes as constants
(:func:`mmhrformer.layers.fixed_size_export`), and every file has what is computable before run
time folded (:mod:`.folding`): a fixed-size file holds no shape arithmetic. The file appears
only when all of that passed: it is written beside the target under a temporary name and
renamed at the end.

The exporter is TorchScript's (``dynamo=False``). Measured on torch 2.14 with HRFormer models
(2 cores): it exports a small OCRNet with free batch, height and width in 5 s where the dynamo
exporter took 100 s (HRFormer-S TopDown: 26 s against 253 s), with the same
onnxruntime results at every size; dynamo also fixes a batch of 1 (0/1 specialisation, so it needs
an example batch of 2) and needs :mod:`.host_patches` for MMSeg's ``resize``. This exporter does
not need the patches; they are on all the same (they only switch off an eager-only warning), so
that moving to the dynamo exporter, once TorchScript's is gone, changes one argument.
"""
import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..apis.hosts import first_line
from ..layers import fixed_size_export
from ..version import __version__
from . import metadata
from .folding import fold_constants
from .graphs import TASKS, SegmentationGraph, build_graph, labels_of
from .host_patches import export_patches
from .onnx_runtime import OnnxModel
from .op_support import op_types, tensorrt10_problems

MIN_SIZE = 32  # the backbone's stride: every branch keeps at least one pixel
OPSETS = range(11, 21)  # 11: Resize with align_corners; 20: the newest TensorRT 10 reads
DEFAULT_OPSET = 17
# Largest |ONNX - PyTorch| accepted: RTOL of the output's largest magnitude, plus ATOL for
# outputs near zero. Measured with random weights on every shipped config: up to 5e-4 of it (an
# S OCRNet at 160x224; most stay below 1e-4), and the file and PyTorch then differ from a float64
# run of the model by as much as from each other: float32 rounding, which a random network
# amplifies. Ten times that is allowed, as a refused file cannot be kept; a wrong op (a size fixed
# at the example's, a misread resize mode, a lost flip) is off by a sizeable fraction of it.
RTOL, ATOL = 5e-3, 1e-6


class ExportError(ValueError):
    """Bad input or a file that failed its checks; the message is one line."""


def load_host_model(config: str, checkpoint: str, cfg_options: Optional[Dict] = None):
    """The config's host model, with the checkpoint's weights, in eval mode.

    Args:
        config (str): The config file.
        checkpoint (str): Its weights.
        cfg_options (dict, optional): ``KEY=VALUE`` settings merged into the config first, as
            OpenMMLab's tools take them (``{'model.test_cfg.flip_test': False}``).

    Returns:
        tuple: ``(host, cfg, model, checkpoint_meta)``.

    Raises:
        HostError: The config is missing, does not load, takes no option given, or names no
            host of this package.
        CheckpointError: The checkpoint is missing, foreign or does not fit the model.
    """
    from mmengine.model import revert_sync_batchnorm

    from ..apis import host_of, load_config
    from ..checkpoint import build_in_host, load_checked
    cfg = load_config(config, cfg_options)
    host = host_of(cfg)
    # As MMEngine's runner and the hosts' init_model build it: the top-level data preprocessor,
    # no training settings, no pretrained backbone (the checkpoint sets every weight).
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    cfg.model.train_cfg = None
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    try:
        model = revert_sync_batchnorm(build_in_host(host, cfg.model))
    except Exception as err:  # noqa: BLE001 - registries and constructors fail in every way
        raise ExportError(f'{config}: its model does not build ({type(err).__name__}: '
                          f'{first_line(err)})') from None
    checkpoint_meta = load_checked(model, checkpoint, cfg)
    return host, cfg, model.eval(), checkpoint_meta


def plain(value):
    """A config value (ConfigDicts, tuples) as plain dicts and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def dataset_meta_of(host: str, cfg, checkpoint_meta: Dict) -> Dict:
    """The data set's metainfo as the hosts' inferencers take it: the checkpoint's, else the
    config's test data set (its ``metainfo``, else its class's ``METAINFO``)."""
    if checkpoint_meta.get('dataset_meta'):
        return dict(checkpoint_meta['dataset_meta'])
    if host == 'mmpose':
        from mmpose.apis.inference import dataset_meta_from_config
        return dataset_meta_from_config(cfg, dataset_mode='train') or {}
    import importlib

    from mmengine.registry import DefaultScope
    dataset = (cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}).get('dataset', {})
    while 'metainfo' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # wrappers (RepeatDataset, ...)
    if dataset.get('metainfo'):
        return dict(dataset['metainfo'])
    registry = importlib.import_module(f'{host}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(host):
        cls = registry.get(dataset.get('type', '')) if dataset.get('type') else None
    return dict(getattr(cls, 'METAINFO', {}) or {})


def label_names(host: str, dataset_meta: Dict) -> List[str]:
    """Class names (segmentation, classification) or keypoint names (pose), in output order."""
    if host == 'mmpose':
        names = dataset_meta.get('keypoint_id2name') or {}
        return [names[i] for i in sorted(names)]
    return list(dataset_meta.get('classes') or [])


def default_shape(host: str, cfg) -> Tuple[int, int]:
    """(H, W) the config trains or tests at: MMSeg's crop (``data_preprocessor.size``), the
    pose codec's input size, MMPretrain's test crop (else 224)."""
    if host == 'mmseg':
        size = cfg.model.data_preprocessor.get('size') or cfg.get('crop_size')
        if size:
            return tuple(size)
    elif host == 'mmpose':
        w, h = cfg.model.head.decoder.input_size
        return h, w
    else:
        for step in cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', []):
            crop = step.get('crop_size')
            if crop:
                return (crop, crop) if isinstance(crop, int) else tuple(crop)[::-1]
        return 224, 224
    raise ExportError('the config sets no input size (data_preprocessor.size / crop_size); '
                      'give --shape H W')


def second_size(height: int, width: int) -> Tuple[int, int]:
    """An odd size, other than the exported one, for checking a dynamic file: three quarters of
    each side, made odd (the branches then pad and resize to odd sizes)."""
    return tuple(max(MIN_SIZE + 1, (s * 3 // 4) | 1) for s in (height, width))


def check_options(shape: Optional[Sequence[int]], batch: int, opset: int) -> None:
    if shape is not None and (len(shape) != 2 or min(shape) < MIN_SIZE):
        raise ExportError(f'--shape {" ".join(map(str, shape))}: height and width must be at '
                          f'least {MIN_SIZE} (the backbone\'s stride)')
    if batch < 1:
        raise ExportError(f'--batch {batch}: must be at least 1')
    if opset not in OPSETS:
        raise ExportError(f'--opset {opset}: must be {OPSETS.start}-{OPSETS.stop - 1} (Resize '
                          'with align_corners needs 11; TensorRT 10 reads up to 20)')


def export_onnx(config: str, checkpoint: str, out: str, shape: Optional[Sequence[int]] = None,
                dynamic: bool = False, batch: int = 1, opset: int = DEFAULT_OPSET,
                argmax: bool = False, cfg_options: Optional[Dict] = None,
                log: Callable[[str], None] = print) -> Dict:
    """Exports ``config`` with ``checkpoint`` to ``out``, checked, compared and described.

    Args:
        config (str): A config of MMSeg, MMPose or MMPretrain with an HRFormer (any model of
            those hosts whose ops export).
        checkpoint (str): Its trained or converted weights.
        out (str): The ONNX file to write.
        shape (tuple[int, int], optional): (H, W) of the example input; default
            :func:`default_shape`.
        dynamic (bool): Batch, height and width free in the file.
        batch (int): Batch of the example input (the file's batch when not dynamic).
        opset (int): ONNX opset.
        argmax (bool): Segmentation: output the label map instead of the logits.
        cfg_options (dict, optional): Settings merged into the config (:func:`load_host_model`).
        log (callable): Where progress lines go.

    Returns:
        dict: The file's metadata (decoded).

    Raises:
        ExportError, HostError, CheckpointError: One line each; ``out`` is not written.
    """
    check_options(shape, batch, opset)
    out_path = Path(out)
    if out_path.is_dir():
        raise ExportError(f'{out}: is a folder; give the file to write')
    host, cfg, model, checkpoint_meta = load_host_model(config, checkpoint, cfg_options)
    dataset_meta = dataset_meta_of(host, cfg, checkpoint_meta)
    try:
        graph = build_graph(host, model, dataset_meta, argmax)
    except ValueError as err:
        raise ExportError(str(err)) from None
    height, width = shape or default_shape(host, cfg)
    description = graph.describe()
    output = description.pop('output')
    labels = label_names(host, dataset_meta)
    if labels and len(labels) != graph.num_labels:
        log(f'note: the data set names {len(labels)} labels, the model has {graph.num_labels}; '
            'no names stored')
        labels = []
    props = dict(
        task=TASKS[host], host=host, config=Path(config).name, checkpoint=Path(checkpoint).name,
        input=dict(name='image', shape=['batch' if dynamic else batch, 3,
                                        'height' if dynamic else height,
                                        'width' if dynamic else width],
                   dtype='float32', meaning='images as the host\'s pipeline loads them: pixel '
                   'values 0-255, channels as mmcv.imread reads (BGR); the graph normalises'),
        output=output, preprocessing=graph.normalize.describe(),
        labels=labels, dataset_meta=dataset_meta,
        cfg_options=plain(cfg_options or {}), export_size=[height, width], dynamic=dynamic,
        opset=opset,
        exported_with=dict(mmhrformer=__version__, torch=torch.__version__),
        # What stays outside the graph, for runtimes without OpenMMLab: the resizing / cropping /
        # affine warp in front, and the pose codec behind.
        test_pipeline=plain(cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])),
        **description)
    if host == 'mmpose':
        props['codec'] = plain(cfg.model.head.decoder)

    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{out_path.name}.', suffix='.tmp',
                                   dir=out_path.parent)
    except OSError as err:
        raise ExportError(f'{out}: cannot write there ({err.strerror or err})') from None
    os.close(fd)
    try:
        example = example_batch(batch, height, width)
        log(f'exporting {props["task"]} model of {props["config"]} at '
            f'{batch}x3x{height}x{width}' + (' (batch, height, width free)' if dynamic else ''))
        trace(graph, example, tmp, host, output['name'], dynamic, opset)
        import onnx
        proto = fold_constants(onnx.load(tmp))
        onnx.save(proto, tmp)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as err:
            raise ExportError(f'onnx.checker refuses the exported graph: {first_line(err)}') \
                from None
        props['op_types'] = op_types(proto)
        props['tensorrt10_problems'] = tensorrt10_problems(proto)
        cases = [(batch, height, width)]
        if dynamic:
            cases.append((batch + 1, *second_size(height, width)))
        session = OnnxModel(tmp)
        props['verified'] = [compare(graph, session, case) for case in cases]
        metadata.write(proto, props)
        onnx.save(proto, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; the result is a usual file
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return props


def example_batch(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Random pixels (whole numbers 0-255, float32) of shape (batch, 3, height, width)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, height, width), generator=g).float()


def trace(graph: torch.nn.Module, example: torch.Tensor, path: str, host: str, output: str,
          dynamic: bool, opset: int) -> None:
    """Writes the ONNX graph of ``graph`` on ``example`` to ``path`` (see the module doc for the
    exporter)."""
    axes = None
    if dynamic:
        spatial = {0: 'batch', 2: 'height', 3: 'width'}
        axes = {'image': spatial, output: {0: 'batch'} if output == 'scores' else spatial}
    # At a fixed size the model reads its sizes as constants (layers.fixed_size_export).
    sizes = contextlib.nullcontext() if dynamic else fixed_size_export()
    with warnings.catch_warnings(), export_patches(host), torch.no_grad(), sizes:
        # The tracer warns at every Python int it records (the backbone's padding arithmetic);
        # the comparison with PyTorch at a second size is what shows the sizes stayed free.
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(graph, (example, ), path, dynamo=False, opset_version=opset,
                              input_names=['image'], output_names=[output],
                              dynamic_axes=axes, do_constant_folding=True)
        except Exception as err:  # noqa: BLE001 - the exporter fails in many ways on user models
            raise ExportError(f'the exporter failed: {type(err).__name__}: '
                              f'{first_line(err)}') from None


def compare(graph: torch.nn.Module, session: OnnxModel, case: Tuple[int, int, int]) -> Dict:
    """Runs the exported file (``session``) and ``graph`` in PyTorch on one random batch of shape
    ``case`` (N, H, W); raises :class:`ExportError` beyond :data:`RTOL` (and :data:`ATOL`).

    Returns:
        dict: ``shape``, ``max_abs_diff``, ``max_abs`` (of the PyTorch output), ``allowed``.
    """
    x = example_batch(case[0], case[1], case[2], seed=1)
    got = session.run(x.numpy())
    with torch.no_grad():
        if isinstance(graph, SegmentationGraph) and graph.argmax:
            return compare_labels(graph, got, x)
        expected = graph(x).numpy()
    shape = list(x.shape)
    if got.shape != expected.shape:
        raise ExportError(f'at input {shape}: onnxruntime gives shape {list(got.shape)}, PyTorch '
                          f'{list(expected.shape)}')
    diff = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max())
    allowed = RTOL * scale + ATOL
    if not diff <= allowed:  # also catches NaN
        raise ExportError(f'at input {shape}: onnxruntime differs from PyTorch by {diff:.3g} '
                          f'(outputs up to {scale:.3g}; allowed {allowed:.2g})')
    return dict(shape=shape, max_abs_diff=diff, max_abs=scale, allowed=allowed)


def compare_labels(graph: SegmentationGraph, got: np.ndarray, x: torch.Tensor) -> Dict:
    """Label maps agree except at pixels whose two best logits tie within the tolerance
    (:data:`RTOL`, :data:`ATOL`), where rounding may pick either."""
    logits = graph.logits(x)
    expected = labels_of(logits, graph.head.threshold).numpy()
    shape = list(x.shape)
    if got.shape != expected.shape:
        raise ExportError(f'at input {shape}: onnxruntime gives labels of shape '
                          f'{list(got.shape)}, PyTorch {list(expected.shape)}')
    scale = float(logits.abs().max())
    allowed = RTOL * scale + ATOL
    differ = got != expected
    if logits.shape[1] > 1:
        top2 = logits.topk(2, dim=1).values
        ties = (top2[:, :1] - top2[:, 1:]).numpy() <= allowed
    else:
        ties = np.abs(torch.sigmoid(logits).numpy() - graph.head.threshold) <= allowed
    if (differ & ~ties).any():
        raise ExportError(f'at input {shape}: onnxruntime labels {int(differ.sum())} pixels '
                          'differently from PyTorch, not all at ties')
    return dict(shape=shape, pixels_differing=int(differ.sum()), at_ties_within=allowed)
