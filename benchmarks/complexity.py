"""Parameters and FLOPs of the HRFormer ImageNet classifiers (T / S / B) against the official ones.

The model is MMPretrain's ``ImageClassifier(backbone=HRFormer, neck=HRFormerClsNeck,
head=LinearClsHead(1000, 2048))``, the official classifier's structure.

Params: every trainable parameter, exact, next to the official count (the sum of numel over the
official checkpoint's parameter keys, running statistics and the relative position index buffer
excluded) and the paper's rounded one.

FLOPs: MMEngine's ``FlopAnalyzer`` (``mmengine.analysis``, a port of fvcore's), at 1x3x224x224 in
eval mode. It traces the model with ``torch.jit`` and counts, per aten op, one multiply-add as one
FLOP: convolutions, linear layers and matmuls, plus the norms, upsampling and pooling it has handles
for (elementwise adds, activations and softmax are not counted). It has no handle for
``aten::scaled_dot_product_attention``, which our window attention calls: it would silently skip
the attention matmuls, so a handle is registered here that counts them the same way (q @ k^T and
attn @ v: B * heads * N * N * head_dims MACs each; softmax and the bias add uncounted). The result
is cross-checked against an analytic count of the window attention. In eval mode every BatchNorm is
folded into its conv, so no BN FLOPs appear.

The paper's numbers (1.83G / 3.56G / 13.71G) come from the official ``cls/tools/flop_count.py``, a
detectron2-derived counter that also counts BatchNorm (4 per element), elementwise adds / muls /
ReLU (1 per element), rsqrt and softmax (5 per element), but not LayerNorm, GELU or upsampling.
The last column re-counts our model under those rules (BN unfolded, bias adds of the linear layers
and the attention's q scaling, bias add, softmax and zero-rate dropout counted analytically inside
SDPA): it lands within 0.5% of the paper, which accounts for the gap to the MAC count.

Usage:
    python benchmarks/complexity.py                  # T, S, B at 224x224, markdown table
    python benchmarks/complexity.py --arch small --size 256
"""
import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Dict

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.analysis import FlopAnalyzer  # noqa: E402
from mmengine.analysis.jit_handles import get_shape  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from mmhrformer import ARCH_ZOO  # noqa: E402

MMLogger.get_instance('mmengine').setLevel(logging.ERROR)

# Official counts: the sum of numel over the parameter keys of the official checkpoints
# (``official_keys/hrt_*_cls.tsv``), and the paper's Table (params, GFLOPs at 224x224, top-1).
OFFICIAL = {
    'tiny': dict(params=8_035_820, backbone=2_572_388, paper_params=8.0, paper_gflops=1.83,
                 top1=78.6),
    'small': dict(params=13_544_882, backbone=7_891_050, paper_params=13.5, paper_gflops=3.56,
                  top1=81.2),
    'base': dict(params=50_320_098, backbone=44_040_666, paper_params=50.3, paper_gflops=13.71,
                 top1=82.8),
}
WINDOW = 7
BLOCKS_PER_MODULE = 2


def sdpa_flop_jit(inputs, outputs) -> int:
    """FLOPs (MACs) of ``aten::scaled_dot_product_attention``: q @ k^T plus attn @ v.

    q (..., L, E), k (..., S, E), v (..., S, Ev): ``batch * L * S * (E + Ev)``.
    """
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def official_rules_sdpa_jit(inputs, outputs) -> int:
    """SDPA under the official counter's rules: matmuls + q scaling + bias add + softmax + dropout.

    The official attention (torch's ``multi_head_attention_forward`` style) runs ``q * scale``,
    ``q @ k^T``, ``+ bias``, ``softmax``, ``dropout`` (rate 0, still traced) and ``attn @ v``.
    """
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch, length, keys = math.prod(q[:-2]), q[-2], k[-2]
    logits = batch * length * keys
    return sdpa_flop_jit(inputs, outputs) + batch * length * q[-1] + logits * (1 + 5 + 1)


def official_rules_linear_jit(inputs, outputs) -> int:
    """A linear layer as the official counter saw it: a matmul plus an elementwise bias add."""
    x, w = get_shape(inputs[0]), get_shape(inputs[1])
    rows = math.prod(x[:-1])
    return rows * x[-1] * w[0] + rows * w[0]


def elementwise_jit(inputs, outputs) -> int:
    return math.prod(get_shape(outputs[0]))


def no_flops(inputs, outputs) -> int:
    # FlopAnalyzer.set_op_handle(op, None) does not drop a default handle (MMEngine 0.10.7).
    return 0


def batchnorm_jit(inputs, outputs) -> int:
    return 4 * math.prod(get_shape(inputs[0]))  # the official counter's BN rule


# Ops the official counter did not count either (GELU, LayerNorm's pieces, the final mean, ...).
OFFICIAL_RULES_UNCOUNTED = {'aten::gelu', 'aten::neg', 'aten::mean'}


def official_rules_flops(model: torch.nn.Module, size: int) -> int:
    """FLOPs under the rules of the official ``cls/tools/flop_count.py`` (an estimate)."""
    model.train()  # unfolded BatchNorm, as in the official model's graph
    analyzer = FlopAnalyzer(model, (torch.zeros(1, 3, size, size), ))
    analyzer.set_op_handle(**{
        'aten::scaled_dot_product_attention': official_rules_sdpa_jit,
        'aten::linear': official_rules_linear_jit,
        'aten::batch_norm': batchnorm_jit,
        'aten::layer_norm': no_flops,
        'aten::upsample_nearest2d': no_flops,
        'aten::upsample_bilinear2d': no_flops,
        **{op: elementwise_jit for op in ('aten::add', 'aten::add_', 'aten::mul', 'aten::sub',
                                          'aten::div', 'aten::relu', 'aten::relu_', 'aten::rsqrt')},
    })
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analyzer.total()
    missed = set(analyzer.unsupported_ops()) - OFFICIAL_RULES_UNCOUNTED
    if missed:  # a new op in the model's graph: decide how the official counter would count it
        raise RuntimeError(f'official-rules count: no handle for {sorted(missed)}')
    model.eval()
    return total


def attention_macs(arch: str, size: int) -> int:
    """Analytic window-attention matmul MACs of the backbone at a size x size input."""
    a = ARCH_ZOO[arch]
    n = WINDOW * WINDOW
    total = 0
    for s, modules in enumerate(a['num_modules']):
        for i, channels in enumerate(a['channels'][:s + 2]):
            side = size
            for _ in range(i + 2):  # branch i is at stride 2^(i+2), each halving rounding up
                side = -(-side // 2)
            windows = (-(-side // WINDOW))**2
            total += modules * BLOCKS_PER_MODULE * windows * 2 * n * n * channels
    return total


def build_classifier(arch: str):
    import mmpretrain.models  # noqa: F401  (registers ImageClassifier, LinearClsHead)
    from mmpretrain.registry import MODELS
    import mmhrformer  # noqa: F401
    return MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='mmhrformer.HRFormer', arch=arch),
             neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=ARCH_ZOO[arch]['channels']),
             head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048)))


def measure(arch: str, size: int) -> Dict[str, float]:
    model = build_classifier(arch).eval()
    params = sum(p.numel() for p in model.parameters())
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    analyzer = FlopAnalyzer(model, (torch.zeros(1, 3, size, size), ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analyzer.by_operator()
    attention = by_op.get('scaled_dot_product_attention', 0)
    expected = attention_macs(arch, size)
    if attention != expected:
        raise RuntimeError(f'{arch}: counted {attention} attention MACs, expected {expected}')
    macs = sum(by_op.get(op, 0) for op in ('conv', 'linear', 'matmul', 'bmm', 'addmm',
                                           'scaled_dot_product_attention'))
    return dict(params=params, backbone_params=backbone_params, total=analyzer.total(),
                macs=macs, attention=attention, by_op=dict(by_op),
                skipped=dict(analyzer.unsupported_ops()),
                official_rules=official_rules_flops(model, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', nargs='+', default=['tiny', 'small', 'base'],
                        choices=sorted(ARCH_ZOO))
    parser.add_argument('--size', type=int, default=224, help='input side (default 224)')
    parser.add_argument('--verbose', action='store_true', help='per-operator breakdown')
    args = parser.parse_args()

    rows = {arch: measure(arch, args.size) for arch in args.arch}
    print(f'HRFormer ImageNet classifiers, 1x3x{args.size}x{args.size}, eval mode; FLOPs by '
          'mmengine.analysis.FlopAnalyzer (1 multiply-add = 1 FLOP) + an SDPA handle\n')
    print('| model | params | official params | paper | conv + linear + attn (GMAC) | '
          'of which attn matmuls | FlopAnalyzer total (G) | official counter\'s rules (G) | '
          'paper FLOPs (G) |')
    print('|---|---|---|---|---|---|---|---|---|')
    for arch, r in rows.items():
        o = OFFICIAL[arch]
        same = 'equal' if r['params'] == o['params'] else f'{r["params"] - o["params"]:+,}'
        paper_flops = f'{o["paper_gflops"]:.2f}' if args.size == 224 else 'n/a'
        print(f'| HRFormer-{arch[0].upper()} | {r["params"]:,} ({r["params"] / 1e6:.3f}M) | '
              f'{o["params"]:,} ({same}) | {o["paper_params"]}M | {r["macs"] / 1e9:.3f} | '
              f'{r["attention"] / 1e9:.3f} | {r["total"] / 1e9:.3f} | '
              f'{r["official_rules"] / 1e9:.3f} | {paper_flops} |')
    print('\nBackbone alone: ' + ', '.join(
        f'{arch[0].upper()} {r["backbone_params"]:,} (official {OFFICIAL[arch]["backbone"]:,})'
        for arch, r in rows.items()))
    if args.verbose:
        for arch, r in rows.items():
            ops = ', '.join(f'{k} {v / 1e9:.4f}G' for k, v in sorted(r['by_op'].items()))
            print(f'\n{arch}: counted {ops}')
            print(f'{arch}: not counted (no handle) ' +
                  ', '.join(f'{k} x{v}' for k, v in sorted(r['skipped'].items())))


if __name__ == '__main__':
    main()
