"""Deployed speed: the files ``hrformer-export`` writes against the HRNet files they replace.

Every model is a whole host model with random weights and random BN statistics (as a trained one
has them), its data preprocessing in the graph. This package's files are written by the tool
itself (:func:`mmhrformer.deploy.onnx_export.export_onnx`, which also checks them against
PyTorch), at a fixed size and with ``--dynamic``; the references are exported plainly
(``torch.onnx.export``, TorchScript exporter, opset 17) through the same graph wrapper, at the
same fixed size and with batch, height and width free:

* pose, COCO 256x192, flip test off (``model.test_cfg.flip_test=False``): this package's
  HRFormer-S TopDown against MMPose's HRNet-W32 (``td-hm_hrnet-w32_8xb64-210e_coco-256x192``, 7.1
  GFLOPs to HRFormer-S's 2.8) and MMPose's own HRFormer-S, at batch 1 and 4;
* segmentation, Cityscapes 1x3x512x1024: this package's OCRNet-HRFormer-S against MMSeg's
  OCRNet-HRNetV2p-W48 (``ocrnet_hr48_4xb2-80k_cityscapes-512x1024``).

Per input, every file in onnxruntime and in OpenVINO and this package's PyTorch eager model take
turns (warm-up first, then ``--repeats`` rounds of one call each), so machine noise hits all
alike. The table gives median milliseconds, the speed-up over the reference's fixed-size file in
the same runtime and over this package's eager model (medians of the per-round ratios; above 1
is faster), and the node count of each file as written and after onnxruntime's optimizer. The
issue's goals are checked below the table. The processor, the versions, the threads and the load
average (the machine may be shared) are printed with it.

Usage:
    python benchmarks/onnx_speed.py                       # the docs' table (about 5 minutes)
    python benchmarks/onnx_speed.py --no-seg --batches 1  # pose only
    python benchmarks/onnx_speed.py --pose-shape 64 48 --batches 1 --no-seg --repeats 1

OpenVINO is optional (``pip install openvino``, or the package's ``openvino`` extra); without it
its rows are left out.
"""
import argparse
import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


POSE_CONFIG = ROOT / 'configs/hrformer_pose/td-hm_hrformer-s_8xb32-210e_coco-256x192.py'
SEG_CONFIG = ROOT / 'configs/hrformer/ocrnet_hrformer-s_4xb2-80k_cityscapes-512x1024.py'
MMPOSE_CONFIGS = 'body_2d_keypoint/topdown_heatmap/coco'
HRNET_W32 = 'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py'
MMPOSE_HRFORMER_S = 'td-hm_hrformer-small_8xb32-210e_coco-256x192.py'
OCRNET_W48 = 'ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py'
NO_FLIP = {'model.test_cfg.flip_test': False}
OPSET = 17
# The goals: (this file's speed-up over the reference's fixed file, at least).
POSE_GOAL, SEG_GOAL, DYNAMIC_SLACK = 1.5, 1.0, 1.10


def processor() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or 'unknown'


def host_config(host: str, relative: str) -> Path:
    """A config shipped inside an installed host package (its ``.mim/configs``)."""
    import importlib
    return Path(importlib.import_module(host).__file__).parent / '.mim' / 'configs' / relative


def built_model(config: Path, options: dict):
    """(host, model) of a config with ``options`` merged, random weights as trained ones."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm

    from mmhrformer.apis import host_of
    from mmhrformer.checkpoint import build_in_host
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(options)
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    cfg.model.train_cfg = None
    cfg.model.backbone.init_cfg = None
    host = host_of(str(config))
    with quiet():
        # As the hosts' inference and the export build it: SyncBN as BN.
        model = revert_sync_batchnorm(build_in_host(host, cfg.model))
        with_statistics(model)
    return host, model.eval()


def with_statistics(model):
    """Random BN statistics as a trained model has them, on PyTorch's default initialisation
    (the models' own init makes the untrained activations grow to hundreds through the heads)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


@contextlib.contextmanager
def quiet():
    """Hides the exporters' and hosts' warnings and progress lines."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        yield


def export_ours(config: Path, model, tmp: Path, name: str, shape, batch: int, dynamic: bool,
                options: dict) -> str:
    """The file ``hrformer-export`` writes for ``model``'s weights."""
    from mmhrformer.deploy.onnx_export import export_onnx
    checkpoint = tmp / 'weights.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    out = str(tmp / f'{name}.onnx')
    with quiet():
        export_onnx(str(config), str(checkpoint), out, shape, dynamic, batch, OPSET,
                    cfg_options=options, log=lambda line: None)
    return out


def export_plain(graph, tmp: Path, name: str, shape, batch: int, dynamic: bool) -> str:
    """The reference's file: ``torch.onnx.export`` of the same graph wrapper, nothing else."""
    from mmhrformer.deploy.host_patches import export_patches
    out = str(tmp / f'{name}.onnx')
    output = 'seg_logits' if 'Segmentation' in type(graph).__name__ else 'heatmaps'
    axes = {'image': {0: 'batch', 2: 'height', 3: 'width'},
            output: {0: 'batch', 2: 'height', 3: 'width'}} if dynamic else None
    with quiet(), export_patches('mmseg' if output == 'seg_logits' else 'mmpose'), \
            torch.no_grad():
        torch.onnx.export(graph, (torch.rand(batch, 3, *shape) * 255, ), out, dynamo=False,
                          opset_version=OPSET, input_names=['image'], output_names=[output],
                          dynamic_axes=axes, do_constant_folding=True)
    return out


def node_counts(path: str, tmp: Path) -> str:
    """Nodes of the file, and after onnxruntime's optimizer (all levels) for this machine."""
    import onnx
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp / 'optimized.onnx')
    options.log_severity_level = 3
    ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return (f'{len(onnx.load(path).graph.node):,} / '
            f'{len(onnx.load(options.optimized_model_filepath).graph.node):,}')


class Runners:
    """Callables ``x (numpy) -> output`` of one file in onnxruntime and OpenVINO."""

    def __init__(self, threads: int):
        import onnxruntime as ort
        self.ort, self.threads = ort, threads
        try:
            import openvino
        except ImportError:
            self.openvino = None
        else:
            self.openvino = openvino.Core()

    def versions(self) -> str:
        ov = self.openvino.get_versions('CPU')['CPU'].build_number if self.openvino else None
        return (f'onnxruntime {self.ort.__version__}, OpenVINO '
                + (ov.split('-')[0] if ov else 'not installed'))

    def runtimes(self):
        return ['onnxruntime'] + (['OpenVINO'] if self.openvino else [])

    def load(self, path: str, runtime: str):
        if runtime == 'onnxruntime':
            options = self.ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            session = self.ort.InferenceSession(path, options,
                                                providers=['CPUExecutionProvider'])
            return lambda x: session.run(None, {'image': x})[0]
        # f32: on CPUs with bf16 units OpenVINO would otherwise compute in bf16.
        compiled = self.openvino.compile_model(path, 'CPU', {
            'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': 'f32',
            'INFERENCE_NUM_THREADS': self.threads})
        return lambda x: compiled(x)[0]


def eager_runner(graph):
    def run(x):
        with torch.inference_mode():
            return graph(torch.from_numpy(x)).numpy()
    return run


def interleaved(runs: dict, x: np.ndarray, warmup: int, repeats: int) -> dict:
    """Per name, one time per round; every callable is called once per round, in turn."""
    for fn in runs.values():
        for _ in range(1 + warmup):
            fn(x)
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    return times


def speedup(times: dict, reference, name) -> float:
    """Median over rounds of the reference's time over this one's (above 1: faster)."""
    return statistics.median(r / t for r, t in zip(times[reference], times[name]))


def pose_case(args, runners, batch, files, eager):
    """The pose rows at one batch: the files, the eager model, times and node counts."""
    runs, rows = {}, []
    for (model, kind), path in files[batch].items():
        for runtime in runners.runtimes():
            runs[(model, kind, runtime)] = runners.load(path, runtime)
    runs[('this package', 'PyTorch eager', 'PyTorch')] = eager_runner(eager)
    x = (np.random.default_rng(0).random((batch, 3, *args.pose_shape)) * 255).astype(np.float32)
    times = interleaved(runs, x, args.warmup, args.repeats)
    return times, f'{batch}x3x{args.pose_shape[0]}x{args.pose_shape[1]}', 'MMPose HRNet-W32'


def table(cases, nodes) -> list:
    """Markdown rows of every case, and the goal checks."""
    lines = ['| input | model | file | runtime | ms | x reference\'s fixed file | x our eager '
             '| nodes (file / after onnxruntime\'s optimizer) |',
             '|---|---|---|---|---|---|---|---|']
    goals = []
    for times, size, reference in cases:
        eager = ('this package', 'PyTorch eager', 'PyTorch')
        for key, t in times.items():
            model, kind, runtime = key
            ref = (reference, 'fixed', runtime)
            vs_ref = f'{speedup(times, ref, key):.2f}x' if ref in times and key != ref else ''
            vs_eager = f'{speedup(times, eager, key):.2f}x' if key != eager else ''
            lines.append(f'| {size} | {model} | {kind} | {runtime} | '
                         f'{1000 * statistics.median(t):.1f} | {vs_ref} | {vs_eager} | '
                         f'{nodes.get((size, model, kind), "")} |')
            if model != 'this package' or key == eager:
                continue
            if kind == 'fixed':
                goal = SEG_GOAL if reference.startswith('MMSeg') else POSE_GOAL
                goals.append((f'{size} {runtime}: fixed file >= {goal}x {reference}\'s',
                              speedup(times, ref, key), goal))
                goals.append((f'{size} {runtime}: fixed file >= PyTorch eager',
                              speedup(times, eager, key), 1.0))
            else:
                fixed = (model, 'fixed', runtime)
                goals.append((f'{size} {runtime}: --dynamic within 10 % of the fixed file',
                              speedup(times, fixed, key), 1 / DYNAMIC_SLACK))
    lines.append('')
    for what, value, goal in goals:
        lines.append(f'- {what}: {value:.2f}x, {"met" if value >= goal else "NOT met"}')
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--pose-shape', type=int, nargs=2, default=[256, 192], metavar=('H', 'W'))
    parser.add_argument('--seg-shape', type=int, nargs=2, default=[512, 1024], metavar=('H', 'W'))
    parser.add_argument('--no-seg', action='store_true', help='leave the OCRNet rows out')
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2,
                        help='threads of every runtime and of PyTorch (default 2)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmhrformer.deploy.graphs import build_graph
    load_before = os.getloadavg()
    runners = Runners(args.threads)
    cases, nodes = [], {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        # Pose: every file of every batch first (the references' free-size file serves all).
        models = {'this package': built_model(POSE_CONFIG, NO_FLIP)}
        for label, name in (('MMPose HRNet-W32', HRNET_W32),
                            ('MMPose HRFormer-S', MMPOSE_HRFORMER_S)):
            models[label] = built_model(host_config('mmpose', f'{MMPOSE_CONFIGS}/{name}'),
                                        NO_FLIP)
        files = {batch: {} for batch in args.batches}
        for label, (host, model) in models.items():
            graph = build_graph(host, model, {})
            for batch in args.batches + ['free']:
                dynamic = batch == 'free'
                name = f'{label}_{batch}'.replace(' ', '_')
                if label == 'this package':
                    path = export_ours(POSE_CONFIG, model, tmp, name, args.pose_shape,
                                       args.batches[0] if dynamic else batch, dynamic, NO_FLIP)
                else:
                    path = export_plain(graph, tmp, name, args.pose_shape,
                                        args.batches[0] if dynamic else batch, dynamic)
                for b in (args.batches if dynamic else [batch]):
                    kind = '--dynamic' if dynamic else 'fixed'
                    files[b][(label, kind)] = path
                    size = f'{b}x3x{args.pose_shape[0]}x{args.pose_shape[1]}'
                    nodes[(size, label, kind)] = node_counts(path, tmp)
        eager = build_graph(*models['this package'], {})
        for batch in args.batches:
            cases.append(pose_case(args, runners, batch, files, eager))
        if not args.no_seg:
            cases.append(seg_case(args, runners, tmp, nodes))
    load_after = os.getloadavg()

    print('Deployed speed: whole models, random weights, fp32 on the CPU, opset '
          f'{OPSET}; pose without flip test')
    print(f'processor: {processor()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, '
          f'{runners.versions()}; {args.threads} threads each; {time.strftime("%Y-%m-%d")}')
    print(f'load average (1 / 5 / 15 min): before {" / ".join(f"{v:.2f}" for v in load_before)}'
          f', after {" / ".join(f"{v:.2f}" for v in load_after)}')
    print(f'medians of {args.repeats} interleaved rounds after {args.warmup} warm-up calls\n')
    print('\n'.join(table(cases, nodes)))
    return 0


def seg_case(args, runners, tmp, nodes):
    """The segmentation rows: OCRNet-HRFormer-S's file against OCRNet-HRNetV2p-W48's."""
    from mmhrformer.deploy.graphs import build_graph
    size = f'1x3x{args.seg_shape[0]}x{args.seg_shape[1]}'
    ours_host, ours = built_model(SEG_CONFIG, {})
    theirs_host, theirs = built_model(host_config('mmseg', OCRNET_W48), {})
    reference = 'MMSeg OCRNet-HRNetV2p-W48'
    paths = {('this package', 'fixed'): export_ours(SEG_CONFIG, ours, tmp, 'ocrnet_s',
                                                    args.seg_shape, 1, False, {}),
             (reference, 'fixed'): export_plain(build_graph(theirs_host, theirs, {}), tmp,
                                                'ocrnet_w48', args.seg_shape, 1, False)}
    runs = {}
    for (model, kind), path in paths.items():
        nodes[(size, model, kind)] = node_counts(path, tmp)
        for runtime in runners.runtimes():
            runs[(model, kind, runtime)] = runners.load(path, runtime)
    runs[('this package', 'PyTorch eager', 'PyTorch')] = eager_runner(
        build_graph(ours_host, ours, {}))
    x = (np.random.default_rng(0).random((1, 3, *args.seg_shape)) * 255).astype(np.float32)
    return interleaved(runs, x, args.warmup, args.repeats), size, reference


if __name__ == '__main__':
    sys.exit(main())
