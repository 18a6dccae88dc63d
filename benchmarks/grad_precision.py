"""How far float32 parameter gradients of the GPU check's models are from float64, on the CPU.

The GPU check compares a CUDA training step with the same step on the CPU, both in float32. On the
H200 (2026-12-04) forward outputs and BN running statistics agreed to 1e-6 but the parameter
gradients only to 2e-3 .. 6e-3. This script measures what float32 itself costs on the CPU: the
same model (weights, BN statistics, input and seeds as ``gpu_check.py``'s ``correct`` section
builds them) in float64 as the reference, against

- float32 on 1 thread (the reference order of reductions),
- float32 on 2 threads (another order of the same sums),
- float32 channels_last (another convolution and reduction layout),
- MMPose 1.x's HRFormer on the same weights in float32 (another implementation; backbone only),

overall and per parameter group (relative L2 error of the group, and its share of the whole
squared error). Single-threaded except for the 2-thread run; minutes on a CPU.

    python benchmarks/grad_precision.py                # S and B backbones, TopDown S
    python benchmarks/grad_precision.py --models S     # one
"""
import argparse
import copy
import math
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_check  # noqa: E402  (hides transformers, puts tests/ on the path)
from backbone_speed import mmpose_hrformer, trained_like  # noqa: E402

import builders  # noqa: E402
from mmhrformer import HRFormer  # noqa: E402
from mmhrformer.checkpoint import mmpose_to_ours  # noqa: E402

GROUPS = (  # first match wins
    ('relative position bias tables', r'relative_position_bias_table'),
    ('attention q/k/v/out projections', r'\.attn\.'),
    ('LayerNorms of the blocks', r'branches\.\d+\.\d+\.norm\d\.'),
    ('FFN conv biases (before a BN)', r'\.ffn\.(fc1|dw3x3|fc2)\.bias'),
    ('FFN conv weights', r'\.ffn\.(fc1|dw3x3|fc2)\.weight'),
    ('FFN BNs', r'\.ffn\.norm\d\.'),
    ('stem and layer1', r'^(backbone\.)?(conv\d|bn\d|layer1)\.'),
    ('transitions', r'transition'),
    ('fuse layers', r'fuse_layers'),
    ('heads, necks (host models)', r'^(head|neck|decode_head|auxiliary_head)'),
)


def group_of(name: str) -> str:
    return next((g for g, pat in GROUPS if re.search(pat, name)), 'other')


def branch_of(name: str) -> str:
    m = re.search(r'branches\.(\d+)\.', name)
    return f'branch {m.group(1)} (1/{4 * 2**int(m.group(1))})' if m else 'not in a branch'


def grads(model, run, dtype, threads=1, channels_last=False):
    """{name: gradient (float64)} of one training forward + backward of a copy of ``model``."""
    torch.set_num_threads(threads)
    m = copy.deepcopy(model).to(dtype)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    m.zero_grad(set_to_none=True)
    run(m, dtype, channels_last)
    torch.set_num_threads(1)
    return {n: p.grad.detach().double() for n, p in m.named_parameters() if p.grad is not None}


def rel(got: dict, want: dict, names) -> float:
    num = sum((got[n] - want[n]).pow(2).sum().item() for n in names)
    den = sum(want[n].pow(2).sum().item() for n in names)
    return math.sqrt(num / max(den, 1e-300))


def backbone_run(x):
    def run(m, dtype, channels_last):
        inp = x.to(dtype)
        if channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        m.train()
        sum(o.pow(2).mean() for o in m(inp)).backward()
    return run


def host_run(inputs, samples):
    def run(m, dtype, channels_last):
        inp = inputs.to(dtype)
        if channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        m.train()
        batch = [s.clone() for s in samples]
        if dtype == torch.float64:  # float targets (heatmaps, weights) in the model's precision
            for s in batch:
                for field in s.all_values():
                    for k in list(getattr(field, 'keys', lambda: [])()):
                        v = field.get(k)
                        if torch.is_tensor(v) and v.is_floating_point():
                            field.set_field(v.to(dtype), k)
        loss, _ = m.parse_losses(m.loss(inp, batch))
        loss.backward()
    return run


def report(title, ref, variants):
    names = list(ref)
    print(f'\n## {title}: {len(names)} parameter tensors, '
          f'{sum(ref[n].numel() for n in names) / 1e6:.1f} M values')
    print('rel. L2 error of all parameter gradients against float64:')
    for label, got in variants.items():
        print(f'  {label:38s} {rel(got, ref, names):.1e}')
    base = variants['float32, 1 thread']
    for label, got in variants.items():
        if label != 'float32, 1 thread':  # what the GPU check compares: one fp32 with another
            print(f'  {label + " vs float32, 1 thread":38s} {rel(got, base, names):.1e}')
    total_err = sum((base[n] - ref[n]).pow(2).sum().item() for n in names)
    total_norm = sum(ref[n].pow(2).sum().item() for n in names)
    for key in (group_of, branch_of):
        print(f'per {"group" if key is group_of else "branch"} (float32, 1 thread): rel. error, '
              'share of the squared error, share of the squared gradient norm, tensors')
        buckets = {}
        for n in names:
            buckets.setdefault(key(n), []).append(n)
        for g, ns in sorted(buckets.items(), key=lambda kv: -sum(
                (base[n] - ref[n]).pow(2).sum().item() for n in kv[1])):
            err = sum((base[n] - ref[n]).pow(2).sum().item() for n in ns)
            norm = sum(ref[n].pow(2).sum().item() for n in ns)
            print(f'  {g:38s} {rel(base, ref, ns):8.1e} {err / total_err:6.1%} '
                  f'{norm / total_norm:6.1%} {len(ns):5d}')
    worst = sorted(names, key=lambda n: -(base[n] - ref[n]).pow(2).sum().item())[:6]
    print('largest tensors of the error: ' + '; '.join(
        f'{n} {rel(base, ref, [n]):.1e} ({(base[n] - ref[n]).pow(2).sum().item() / total_err:.0%})'
        for n in worst))


def backbones(letters):
    """The backbones as gpu_check.section_correct builds them: one seed, S first, then B."""
    torch.manual_seed(0)
    out = {}
    for arch in ('small', 'base'):
        model = trained_like(HRFormer(arch=arch))
        x = torch.randn(2, 3, 256, 192)
        if gpu_check.ARCH_LETTER[arch] in letters:
            out[gpu_check.ARCH_LETTER[arch]] = (model, x)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='*', default=['S', 'B', 'pose'],
                        choices=['S', 'B', 'pose'])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as gpu_check.py
    for letter, (model, x) in backbones(args.models).items():
        run = backbone_run(x)
        ref = grads(model, run, torch.float64)
        variants = {'float32, 1 thread': grads(model, run, torch.float32),
                    'float32, 2 threads': grads(model, run, torch.float32, threads=2),
                    'float32, channels_last': grads(model, run, torch.float32,
                                                    channels_last=True)}
        report(f'HRFormer-{letter} backbone, {tuple(x.shape)}', ref, variants)
    if 'S' in args.models:  # MMPose's implementation on the same weights (bilinear upsampling)
        torch.manual_seed(0)
        theirs = trained_like(mmpose_hrformer('small'))
        ours = HRFormer(arch='small', upsample_mode='bilinear')
        ours.load_state_dict(mmpose_to_ours(theirs.state_dict()), strict=True)
        x = torch.randn(2, 3, 256, 192)
        run = backbone_run(x)
        ref = grads(ours, run, torch.float64)
        mine = grads(ours, run, torch.float32)
        theirs_g = mmpose_to_ours(grads(theirs, run, torch.float32))
        report('HRFormer-S (bilinear) against MMPose 1.x HRFormer-S, same weights', ref,
               {'float32, 1 thread': mine, 'MMPose HRFormer, float32': theirs_g})
    if 'pose' in args.models:
        # the correct section's host order: seg, pose; the pose model is built after seg's batch
        torch.manual_seed(0)
        cfg = gpu_check.model_cfg(gpu_check.ROOT / gpu_check.POSE_CONFIG)
        cfg.pop('data_preprocessor', None)
        inputs, samples = builders.pose_batch(n=2, size=(192, 256))
        model = builders.randomize_bn(gpu_check.build('mmpose', cfg))
        run = host_run(inputs, samples)
        ref = grads(model, run, torch.float64)
        variants = {'float32, 1 thread': grads(model, run, torch.float32),
                    'float32, 2 threads': grads(model, run, torch.float32, threads=2)}
        report('MMPose TopdownPoseEstimator + HeatmapHead (S config), 2x3x256x192', ref,
               variants)


if __name__ == '__main__':
    main()
