"""Speed and memory of this package's HRFormer against MMPose 1.x's, at identical weights and outputs.

Both backbones are built in this process with the same weights (MMPose's randomly initialised
model, its BN statistics randomised too, converted to our layout with the converter's mapping),
their outputs are checked to agree, then each measurement alternates between the two models
(warm-up first, medians over repeats) so that machine noise hits both alike.

Reported per arch (S, B): inference latency at the segmentation size (1x3x512x1024) and the pose
size (Nx3x256x192); a training step (forward + backward + AdamW) at the pose size with its
activation memory (bytes autograd keeps for backward, counted once per storage; on CUDA the
allocator's real peak); MMPose's HRNet-W32 (the COCO 256x192 setting) as a second reference at the
pose size; achieved GFLOP/s of every model (FLOPs from torch.utils.flop_counter) against this
machine's fp32 matmul rate. Each ratio comes with its spread: the lowest and highest of the
per-repeat ratios. With ``--device cuda``, AMP (bf16 and fp16) rows are added and the pose batch is
32; with ``--compile``, ``torch.compile`` of our backbone (what MMEngine's ``compile=True`` does):
the seconds the first call takes, the graphs and recompilations, then compiled against eager.

Usage:
    python benchmarks/backbone_speed.py                   # CPU, S and B, the README table
    python benchmarks/backbone_speed.py --arch small --repeats 3 --quick
    python benchmarks/backbone_speed.py --device cuda
    python benchmarks/backbone_speed.py --arch small --quick --compile
"""
import argparse
import contextlib
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.logging import MMLogger  # noqa: E402

from mmhrformer import ARCH_ZOO, HRFormer  # noqa: E402
from mmhrformer.checkpoint import mmpose_backbone_cfg, mmpose_to_ours  # noqa: E402

MMLogger.get_instance('mmengine').setLevel(logging.ERROR)


def mmpose_hrformer(arch: str):
    """MMPose 1.x's HRFormer with the same structure as our ``arch``."""
    from mmpose.models.backbones import HRFormer as MMPoseHRFormer
    cfg = mmpose_backbone_cfg(arch)
    cfg.pop('type')
    return MMPoseHRFormer(**cfg)


def trained_like(model):
    """Random weights as a trained model has them (the official conv init, random BN statistics).

    MMPose's default init (conv std 0.001) makes activations and gradients so small that AdamW's
    state turns denormal and every model crawls.
    """
    model.init_weights()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
            if hasattr(m, 'relative_position_bias_table'):
                m.relative_position_bias_table.normal_(std=0.02)
    return model


def build_pair(arch: str, device: str):
    theirs = trained_like(mmpose_hrformer(arch))
    ours = HRFormer(arch=arch, upsample_mode='bilinear')
    ours.load_state_dict(mmpose_to_ours(theirs.state_dict()), strict=True)
    return ours.to(device), theirs.to(device)


def mmpose_hrnet_w32():
    """MMPose's HRNet-W32 backbone as its COCO 256x192 TopDown config builds it (branch 0 out):
    the convolutional reference HRFormer-S is meant to beat at a third of the FLOPs."""
    from mmpose.models.backbones import HRNet

    def stage(modules, branches, block, blocks, channels):
        return dict(num_modules=modules, num_branches=branches, block=block,
                    num_blocks=(blocks, ) * branches, num_channels=channels)

    extra = dict(stage1=stage(1, 1, 'BOTTLENECK', 4, (64, )),
                 stage2=stage(1, 2, 'BASIC', 4, (32, 64)),
                 stage3=stage(4, 3, 'BASIC', 4, (32, 64, 128)),
                 stage4=stage(3, 4, 'BASIC', 4, (32, 64, 128, 256)))
    return trained_like(HRNet(extra=extra, norm_cfg=dict(type='BN')))


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def elapsed(fn, device: str) -> float:
    """Seconds one call of ``fn`` takes, from an idle device to the end of its work.

    On CUDA between two events on the stream, so that the interval holds the kernels and the
    host's gaps between them but no synchronisation of the timer itself.
    """
    sync(device)
    if device == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict, device: str, warmup: int, repeats: int) -> dict:
    """Seconds per call of each fn in every repeat, alternating fns within a repeat."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(elapsed(fn, device))
    return times


def timed_row(times: dict, reference: str, ours: str = 'ours') -> tuple:
    """(reference median, our median, median ratio, 'lowest-highest' of the per-repeat ratios)."""
    ratios = [r / o for r, o in zip(times[reference], times[ours])]
    return (statistics.median(times[reference]), statistics.median(times[ours]),
            statistics.median(ratios), f'{min(ratios):.2f}-{max(ratios):.2f}')


def max_abs_diff(a, b) -> str:
    """Largest elementwise difference, beside the largest magnitude it is measured against."""
    diff = max((x.float() - y.float()).abs().max().item() for x, y in zip(a, b))
    scale = max(y.float().abs().max().item() for y in b)
    return f'{diff:.1e} (of |out| <= {scale:.0f})'




def count_flops(model, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


@contextlib.contextmanager
def saved_activation_bytes(result: list):
    """Counts the bytes autograd keeps for backward (each storage once)."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield
    result.append(sum(seen.values()))


def train_step_fn(model, x, device, dtype=None):
    """A training step (forward, backward, AdamW) of a backbone on ``x``, under autocast to
    ``dtype``. AdamW is fused, as the shipped configs have it (configs/_base_/schedules): one
    kernel for all parameters, on a CPU as on CUDA."""
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step():
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            out = model(x)
            loss = sum(o.float().pow(2).mean() for o in out)
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)

    return step


def activation_memory(model, x, device, dtype=None) -> int:
    model.train()
    if device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train_step_fn(model, x, device, dtype)()
        return torch.cuda.max_memory_allocated() - base
    result = []
    with saved_activation_bytes(result), torch.autocast(device, dtype=dtype,
                                                        enabled=dtype is not None):
        out = model(x)
    del out
    return result[0]


def matmul_gflops(device) -> float:
    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    t = statistics.median(interleaved({'mm': lambda: a @ b}, device, 2, 5)['mm'])
    return 2 * n**3 / t / 1e9


def in_eval(model):
    model.eval()  # MMPose's HRNet family returns None from train() / eval(): no chaining
    return model


def rate(flops, seconds, peak) -> str:
    return f'{flops / seconds / 1e9:.0f} ({flops / seconds / 1e9 / peak:.0%})'


def shape_of(x) -> str:
    return 'x'.join(map(str, x.shape))


def row(arch, measure, precision, reference, timing, diff='', ours_rate='', ref_rate=''):
    """A table row from :func:`timed_row`'s (reference s, ours s, ratio, spread)."""
    ref_s, ours_s, ratio, spread = timing
    return (arch, measure, precision, reference, f'{ref_s * 1e3:.1f}', f'{ours_s * 1e3:.1f}',
            f'{ratio:.2f}x', spread, diff, ours_rate, ref_rate)


def speed_rows(arch, ours, reference, name, x, device, args, peak, dtypes=(None, ),
               diff='') -> list:
    """Inference (and a training step per autocast dtype, None: fp32) of ours against
    ``reference`` at input ``x``."""
    ours.eval(), in_eval(reference)
    with torch.no_grad():
        timing = timed_row(interleaved({'ours': lambda: ours(x), 'ref': lambda: reference(x)},
                                       device, args.warmup, args.repeats), 'ref')
        flops, ref_flops = count_flops(ours, x), count_flops(reference, x)
    rows = [row(arch, f'inference {shape_of(x)}', 'fp32', name, timing, diff,
                rate(flops, timing[1], peak), rate(ref_flops, timing[0], peak))]
    for dtype in dtypes:
        label = 'fp32' if dtype is None else f'AMP {str(dtype).split(".")[-1]}'
        ours.train(), reference.train()
        timing = timed_row(interleaved({'ours': train_step_fn(ours, x, device, dtype),
                                        'ref': train_step_fn(reference, x, device, dtype)},
                                       device, args.warmup, args.repeats), 'ref')
        # forward + backward ~ 3x forward
        rows.append(row(arch, f'train step {shape_of(x)}', label, name, timing, '',
                        rate(3 * flops, timing[1], peak), rate(3 * ref_flops, timing[0], peak)))
    return rows


def memory_rows(arch, ours, theirs, x, device, dtypes) -> list:
    rows = []
    for dtype in dtypes:
        label = 'fp32' if dtype is None else f'AMP {str(dtype).split(".")[-1]}'
        mem_ours = activation_memory(ours, x, device, dtype)
        mem_theirs = activation_memory(theirs, x, device, dtype)
        what = 'peak CUDA memory' if device == 'cuda' else 'activation memory'
        rows.append((arch, f'{what} {shape_of(x)}', label, 'MMPose HRFormer',
                     f'{mem_theirs / 2**20:.0f} MiB', f'{mem_ours / 2**20:.0f} MiB',
                     f'{mem_theirs / mem_ours:.2f}x', 'exact', '', '', ''))
    return rows


def compiled_rows(arch, ours, x, device, args) -> list:
    """``torch.compile`` of our backbone against our eager backbone: inference, training step."""
    from torch._dynamo.utils import counters
    rows = []
    for mode in ('inference', 'train step'):
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(ours)
        if mode == 'inference':
            ours.eval()
            eager_fn, compiled_fn = ours, compiled
            context = torch.no_grad
        else:
            ours.train()
            eager_fn = train_step_fn(ours, x, device)
            compiled_fn = train_step_fn(compiled, x, device)
            context = contextlib.nullcontext
        with context():
            t0 = time.perf_counter()
            compiled_fn(x) if mode == 'inference' else compiled_fn()
            sync(device)
            seconds = time.perf_counter() - t0
            call = (lambda f: (lambda: f(x))) if mode == 'inference' else (lambda f: f)
            timing = timed_row(interleaved({'ours': call(compiled_fn), 'ref': call(eager_fn)},
                                           device, args.warmup, args.repeats), 'ref')
        # One compiled frame and one graph per mode means no recompilation at a fixed size.
        frames, graphs = counters['frames']['ok'], counters['stats']['unique_graphs']
        rows.append(row(arch, f'{mode} {shape_of(x)}, compiled (first call {seconds:.0f} s, '
                        f'{frames} frame(s) compiled, {graphs} graph(s))', 'fp32',
                        'mmhrformer eager', timing))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', nargs='+', default=['small', 'base'], choices=sorted(ARCH_ZOO))
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--pose-batch', type=int,
                        help='N of the Nx3x256x192 pose input (default: 4 on a CPU, 32 on a GPU)')
    parser.add_argument('--quick', action='store_true',
                        help='skip the 512x1024 segmentation size (for a smoke run)')
    parser.add_argument('--compile', action='store_true',
                        help='add torch.compile rows (minutes of compilation on a CPU)')
    args = parser.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda asked, but torch sees no CUDA device')
    device = args.device
    pose_batch = args.pose_batch or (32 if device == 'cuda' else 4)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # denormals slow both models' CPU kernels down by orders

    peak = matmul_gflops(device)
    machine = (torch.cuda.get_device_name() if device == 'cuda' else
               f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads')
    print(f'# HRFormer backbone: mmhrformer vs MMPose 1.x ({device}: {machine})')
    print(f'torch {torch.__version__}; fp32 matmul rate {peak:.0f} GFLOP/s (2048^3, the "peak")')
    print(f'medians of {args.repeats} interleaved repeats after {args.warmup} warm-up; '
          'ratio = reference / ours (> 1: ours is faster or lighter); spread: the lowest and '
          'highest per-repeat ratio\n')

    dtypes = [None] + ([torch.bfloat16, torch.float16] if device == 'cuda' else [])
    hrnet = mmpose_hrnet_w32().to(device)
    rows = []
    for arch in args.arch:
        ours, theirs = build_pair(arch, device)
        x = torch.randn(pose_batch, 3, 256, 192, device=device)
        inputs = [x] if args.quick else [torch.randn(1, 3, 512, 1024, device=device), x]
        for inp in inputs:
            ours.eval(), theirs.eval()
            with torch.no_grad():
                diff = max_abs_diff(ours(inp), theirs(inp))
            rows += speed_rows(arch, ours, theirs, 'MMPose HRFormer', inp, device, args, peak,
                               dtypes if inp is x else (), diff)
        rows += memory_rows(arch, ours, theirs, x, device, dtypes)
        rows += speed_rows(arch, ours, hrnet, 'MMPose HRNet-W32', x, device, args, peak)
        if args.compile:
            rows += compiled_rows(arch, ours, x, device, args)
        del ours, theirs

    header = ('arch', 'measure', 'precision', 'reference', 'reference ms', 'mmhrformer ms',
              'ratio', 'spread', 'max abs diff', 'ours GFLOP/s (of peak)',
              'reference GFLOP/s (of peak)')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for r in rows:
        print('| ' + ' | '.join(str(c) for c in r) + ' |')


if __name__ == '__main__':
    main()
