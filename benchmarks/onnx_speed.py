"""Inference speed of one exported HRFormer file in onnxruntime and OpenVINO against PyTorch eager.

The backbone (random weights, random BN statistics) is exported once the way ``hrformer-export``
exports (TorchScript exporter, opset 17, batch / height / width free), so the same file runs every
size; its outputs are checked against PyTorch in each runtime first. Then, per input size, the
three runtimes take turns (warm-up first, then ``--repeats`` rounds of one call each), so machine
noise hits all alike; the table gives the median milliseconds and each runtime's time against
PyTorch's (median of the per-round ratios, with their lowest and highest). The processor, the
thread counts and the load average (the machine may be shared) are printed with the table.

Usage:
    python benchmarks/onnx_speed.py                      # HRFormer-S, the docs' table
    python benchmarks/onnx_speed.py --threads 1            # robust when others share the CPU
    python benchmarks/onnx_speed.py --arch tiny --repeats 2 --sizes 1x3x64x48

OpenVINO is optional (``pip install openvino``, or the package's ``openvino`` extra); without it
its column says so.
"""
import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmhrformer import HRFormer  # noqa: E402

DEFAULT_SIZES = ('1x3x256x192', '4x3x256x192', '1x3x512x1024')


def processor() -> str:
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                return line.split(':', 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or 'unknown'


def backbone(arch: str) -> torch.nn.Module:
    """HRFormer with random weights and BN statistics as a trained model has them."""
    model = HRFormer(arch=arch).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def export(model: torch.nn.Module, path: str) -> None:
    """As :func:`mmhrformer.deploy.onnx_export.trace` does for whole models: TorchScript's
    exporter, batch / height / width free."""
    names = [f'branch{i}' for i in range(4)]
    axes = {name: {0: 'batch', 2: 'height', 3: 'width'} for name in ['image', *names]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (torch.rand(1, 3, 64, 64), ), path, dynamo=False, opset_version=17,
                          input_names=['image'], output_names=names, dynamic_axes=axes)


class Runtimes:
    """The three ways to run the model, each a callable ``x (numpy) -> list of numpy outputs``."""

    def __init__(self, model: torch.nn.Module, path: str, threads: int = 0):
        import onnxruntime as ort
        self.model = model
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (a thread per core)
        self.ort = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.ort_version = ort.__version__
        try:
            import openvino as ov
        except ImportError:
            self.openvino, self.ov_version = None, 'not installed'
        else:
            core = ov.Core()
            # f32: on CPUs with bf16 units OpenVINO would otherwise compute in bf16 (outputs off
            # by ~1e-2), not the model the other columns run.
            config = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': 'f32'}
            if threads:
                config['INFERENCE_NUM_THREADS'] = threads
            self.openvino = core.compile_model(core.read_model(path), 'CPU', config)
            self.ov_version = ov.__version__

    def names(self):
        return ['PyTorch eager', 'onnxruntime'] + (['OpenVINO'] if self.openvino else [])

    def __call__(self, name: str, x: np.ndarray):
        if name == 'PyTorch eager':
            with torch.inference_mode():
                return [t.numpy() for t in self.model(torch.from_numpy(x))]
        if name == 'onnxruntime':
            return self.ort.run(None, {'image': x})
        result = self.openvino(x)
        return [result[out] for out in self.openvino.outputs]


def measure(runtimes: Runtimes, x: np.ndarray, warmup: int, repeats: int):
    """Per runtime: its outputs' largest difference from PyTorch, and one time per round."""
    reference = runtimes('PyTorch eager', x)
    diffs = {}
    for name in runtimes.names():
        outs = runtimes(name, x)
        diffs[name] = max(float(np.abs(o - r).max()) for o, r in zip(outs, reference))
        for _ in range(warmup):
            runtimes(name, x)
    times = {name: [] for name in runtimes.names()}
    for _ in range(repeats):
        for name in runtimes.names():  # interleaved: one call of each per round
            start = time.perf_counter()
            runtimes(name, x)
            times[name].append(time.perf_counter() - start)
    return diffs, times, max(float(np.abs(r).max()) for r in reference)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='small', choices=['tiny', 'small', 'base'])
    parser.add_argument('--sizes', nargs='+', default=list(DEFAULT_SIZES), metavar='NxCxHxW')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0,
                        help='threads of every runtime (default: each its own, a thread per '
                        'core); 1 keeps the comparison fair on a machine others share, where a '
                        'thread waiting at a barrier for a descheduled one costs milliseconds')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    model = backbone(args.arch)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / 'hrformer.onnx')
        export(model, path)
        runtimes = Runtimes(model, path, args.threads)
        rows = []
        for size in args.sizes:
            shape = tuple(int(s) for s in size.split('x'))
            x = np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)
            rows.append((size, *measure(runtimes, x, args.warmup, args.repeats)))
    load_after = os.getloadavg()

    print(f'HRFormer-{args.arch[0].upper()} backbone, one exported file (TorchScript exporter, '
          'opset 17, batch / height / width free), fp32 on the CPU')
    print(f'processor: {processor()}, {os.cpu_count()} logical CPUs; torch {torch.__version__} '
          f'({torch.get_num_threads()} threads), onnxruntime {runtimes.ort_version}, OpenVINO '
          f'{runtimes.ov_version}; threads per runtime: {args.threads or "each its default"}; '
          f'{time.strftime("%Y-%m-%d")}')
    print(f'load average (1 / 5 / 15 min): before {" / ".join(f"{v:.2f}" for v in load_before)}'
          f', after {" / ".join(f"{v:.2f}" for v in load_after)}')
    print(f'medians of {args.repeats} interleaved rounds after {args.warmup} warm-up calls\n')
    print('| input | runtime | ms | x PyTorch eager (lowest-highest) | max abs diff vs PyTorch |')
    print('|---|---|---|---|---|')
    for size, diffs, times, scale in rows:
        eager = times['PyTorch eager']
        for name, t in times.items():
            ratios = [a / b for a, b in zip(t, eager)]
            ratio = '1.00x' if name == 'PyTorch eager' else (
                f'{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})')
            print(f'| {size} | {name} | {1000 * statistics.median(t):.1f} | {ratio} | '
                  f'{diffs[name]:.1e} (outputs up to {scale:.0f}) |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
