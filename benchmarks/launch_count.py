"""Device ops per training step: what a GPU's host has to launch, counted on the CPU.

On a GPU, HRFormer's training step is bound by the host launching kernels, not by the device
(docs/gpu.md: 597 ms of CPU against 160 ms of GPU time for two S steps). Launches are counted here
as the ATen ops one training step dispatches to a device (forward, loss, backward, fused AdamW,
``zero_grad``), under a ``TorchDispatchMode`` (:class:`DeviceOpCounter`): views and allocations
launch nothing and are left out. Under a dispatch mode this package takes its device-neutral paths
(:func:`mmhrformer.layers.config.is_capturing`), as on CUDA. The second step is counted: the first
one creates AdamW's state.

Reported for this package's HRFormer, MMPose 1.x's HRFormer (same structure) and MMPose's
HRNet-W32 (its COCO 256x192 setting): ops per step, the most frequent ops, and the bytes autograd
keeps for backward (each storage once). With ``--compiled``, the same step with the backbone under
``torch.compile`` (inductor): the kernels inductor generates plus the extern calls (convolutions,
GEMMs) it makes, per step, counted from the generated code of the compiled forward and backward
graphs. That takes minutes per model on a CPU.

Usage:
    python benchmarks/launch_count.py                       # S and B, eager
    python benchmarks/launch_count.py --arch small --compiled
"""
import argparse
import collections
import logging
import platform
import sys
from pathlib import Path
from typing import Callable, Counter, Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.logging import MMLogger  # noqa: E402

from benchmarks.backbone_speed import (  # noqa: E402
    activation_memory, build_pair, mmpose_hrnet_w32, train_step_fn)

MMLogger.get_instance('mmengine').setLevel(logging.ERROR)

# Ops that launch nothing: allocations (served by the caching allocator), a re-view of a fresh
# tensor, SDPA's query of which kernel it would pick, the profiler's range markers.
NOT_LAUNCHED = {'_unsafe_view', 'empty', 'empty_like', 'empty_strided', 'new_empty',
                'new_empty_strided', '_fused_sdp_choice', '_record_function_enter_new',
                '_record_function_exit'}


class DeviceOpCounter(TorchDispatchMode):
    """Counts the ATen ops that would run on a device, by name, while it is active."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in NOT_LAUNCHED:
            self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_step_ops(step: Callable[[], None]) -> Counter[str]:
    """ATen ops of one call of ``step``, after a first call (AdamW's state)."""
    step()
    with DeviceOpCounter() as counter:
        step()
    return counter.counts


def count_compiled_step_ops(model: torch.nn.Module, x: torch.Tensor) -> Counter[str]:
    """Launches of one training step with ``model`` under ``torch.compile`` (inductor): the
    kernels inductor generated for the compiled forward and backward graphs (each runs once a
    step) plus the ops the compiled code still dispatches (extern GEMMs and convolutions, the
    optimizer, the loss), counted as :func:`count_step_ops` counts."""
    import torch._dynamo
    from torch._inductor import metrics
    torch._dynamo.reset()
    metrics.reset()
    compiled = torch.compile(model)
    step = train_step_fn(compiled, x, 'cpu')
    step()  # compiles the forward graph here and the backward graph in its backward pass
    kernels = metrics.generated_kernel_count
    with DeviceOpCounter() as counter:
        step()
    counter.counts['inductor kernels'] = kernels
    return counter.counts


def models(arch: str) -> Dict[str, torch.nn.Module]:
    ours, theirs = build_pair(arch, 'cpu')
    return {f'mmhrformer HRFormer-{arch[0].upper()}': ours,
            f'MMPose HRFormer-{arch[0].upper()}': theirs,
            'MMPose HRNet-W32': mmpose_hrnet_w32()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', nargs='+', default=['small', 'base'],
                        choices=['tiny', 'small', 'base'])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, default=(256, 192), metavar=('H', 'W'))
    parser.add_argument('--compiled', action='store_true',
                        help='add each model under torch.compile (minutes per model)')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, *args.size)
    shape = 'x'.join(map(str, x.shape))
    print(f'Device ops per training step (forward, loss, backward, fused AdamW), {shape}, '
          f'torch {torch.__version__}, {platform.machine()}\n')
    print('| model | device ops per step | ratio to our eager | kept for backward | top ops |')
    print('|---|---|---|---|---|')
    hrnet_done = False
    for arch in args.arch:
        rows = {}
        for name, model in models(arch).items():
            if name == 'MMPose HRNet-W32' and hrnet_done:
                continue
            model.train()
            counts = count_step_ops(train_step_fn(model, x, 'cpu'))
            kept = activation_memory(model, x, 'cpu')
            rows[name] = (sum(counts.values()), kept, counts)
            if args.compiled:
                counts = count_compiled_step_ops(model, x)
                rows[f'{name}, compiled'] = (sum(counts.values()), None, counts)
        hrnet_done = True
        ours = next(iter(rows.values()))[0]
        for name, (total, kept, counts) in rows.items():
            top = ', '.join(f'{op} {n}' for op, n in counts.most_common(8))
            memory = '-' if kept is None else f'{kept / 2**20:.1f} MiB'
            print(f'| {name} | {total} | {total / ours:.2f}x | {memory} | {top} |')


if __name__ == '__main__':
    main()
