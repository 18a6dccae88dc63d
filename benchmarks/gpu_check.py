"""GPU check: this package on CUDA, correct first, then its speed and memory, in one table.

Made to run once, offline, inside a short GPU lease (``bash tools/device/run.sh``, docs/gpu.md),
and as a dry run anywhere (``--device cpu --quick``: tiny shapes, one repeat). Sections, in the
order they run (most valuable first; each can be left out with ``--skip``):

``env``       matmul rates measured on the card (fp32 with TF32 off, TF32, bf16, fp16): the
              ceilings the achieved TFLOP/s are read against.
``correct``   the backbone (S, B) and the three hosts' models (MMSeg OCRNet, MMPose TopDown +
              HeatmapHead, MMPretrain ImageClassifier + HRFormerClsNeck, from the shipped
              configs), forward and backward on the device against the CPU in fp32 with TF32 off
              (parameter gradients: both against a float64 run on the CPU);
              the FFN chain's gradients and BN running statistics against plain autograd on the
              device (fp32, bf16, fp16 autocast); which SDPA backends take the window attention
              of S (head dim 32) and B (head dim 39), in inference and in training.
``amp``       the quickstart config through MMSeg's Runner: fp32, then MMEngine's
              ``AmpOptimWrapper`` in fp16 (dynamic loss scale) and bf16, same seed and data:
              finite losses, close to fp32.
``backbone``  S and B against MMPose 1.x's HRFormer (same weights, ``backbone_speed.py``'s
              helpers) and S against MMPose's HRNet-W32, at Nx3x256x192: inference, training
              step, fp32 / AMP bf16 / AMP fp16, peak allocator memory of a step.
``ocrnet``    OCRNet-HRFormer-S and -B (the shipped Cityscapes configs) against MMSeg's own
              OCRNet-HRNetV2p-W48: training step at 2x3x512x1024 (fp32, AMP fp16) with its peak
              memory, inference at 1x3x1024x2048, beside the published V100 figures.
``profile``   the top ops of a torch.profiler run of the S training step.
``compile``   ``torch.compile`` of the S backbone against eager, each mode in a child process
              with a time limit: compile seconds, speed, CUDA graphs ('reduce-overhead').

Timings alternate the compared models (warm-up first, medians, CUDA events). Every row is
written to ``--out`` (gpu_check.md, gpu_check.json) as soon as it exists, so that a run cut off
by its time limit still returns what it measured; before each row (or rows measured together)
the check estimates from its section's rows so far whether it fits in what is left of
``--budget-s``, and when it does not, leaves the rest of the section out, and says so.
Exit status: 0 when every check passed, 1 when one failed or a section
broke, 2 for bad arguments.

Usage:
    bash tools/device/run.sh                                   # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check
"""
import argparse
import contextlib
import copy
import gc
import json
import logging
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))  # builders.py: the suite's host-side batches


def hide_transformers():
    """Makes ``transformers`` absent for this process, as MMPretrain 1.2 checks for it.

    MMPretrain imports its multimodal models whenever ``importlib_metadata.distribution``
    finds transformers >= 4.28 (``mmpretrain.utils.dependency.WITH_MULTIMODAL``), and those break
    on releases it was not written for: on the H200 (transformers 5.17) ``mmpretrain.models``
    failed with "TypeError: NoneType takes no arguments", so no MMPretrain model could be built.
    Hiding only the import is not enough (the metadata still says installed, and the import then
    fails inside MMPretrain). With the distribution not found MMPretrain registers placeholders
    instead, as on a machine without transformers; MMDet's optional imports of it fall back too.
    No checked model uses transformers. Must run before anything imports MMPretrain (mmhrformer
    does, to register its modules there).
    """
    try:
        import importlib_metadata  # the backport MMPretrain reads (it travels in .whl/)
    except ImportError:  # no MMPretrain either: nothing to hide from
        return
    found = importlib_metadata.distribution

    def distribution(name):
        if name.replace('_', '-').lower() == 'transformers':
            raise importlib_metadata.PackageNotFoundError(name)
        return found(name)
    importlib_metadata.distribution = distribution
    sys.modules['transformers'] = None  # `import transformers` raises ImportError from now on


hide_transformers()

from backbone_speed import (build_pair, count_flops, elapsed, in_eval,  # noqa: E402
                            interleaved, max_abs_diff, mmpose_hrformer, mmpose_hrnet_w32,
                            shape_of, sync, timed_row, train_step_fn, trained_like)

import builders  # noqa: E402
from mmhrformer import HRFormer  # noqa: E402
from mmhrformer.layers import conv_bn  # noqa: E402
from mmhrformer.models.backbones.hrformer import ConvFFN  # noqa: E402

SECTIONS = ('train', 'env', 'correct', 'amp', 'backbone', 'ocrnet', 'profile', 'compile')
COLUMNS = ('section', 'what', 'setting', 'reference', 'reference value', 'mmhrformer value',
           'ratio (spread)', 'check', 'published (V100)', 'note')
SEG_CONFIGS = {
    'S': 'configs/hrformer/ocrnet_hrformer-s_4xb2-80k_cityscapes-512x1024.py',
    'B': 'configs/hrformer/ocrnet_hrformer-b_4xb2-80k_cityscapes-512x1024.py',
}
POSE_CONFIG = 'configs/hrformer_pose/td-hm_hrformer-s_8xb32-210e_coco-256x192.py'
CLS_CONFIG = 'configs/hrformer_cls/hrformer-s_8xb128_in1k.py'
QUICKSTART = 'configs/quickstart/ocrnet_hrformer-t_tiny-seg.py'
W48_CONFIG = 'configs/ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py'  # in mmseg's .mim
# MMSeg configs/ocrnet/README.md (V100, 4 GPUs x 2 images, max_memory_allocated; fps at batch 1
# on whole 1024x2048 images) and the MMSeg HRFormer draft (PR #1382).
PUBLISHED = {'W48': (8.0, 4.22), 'S': (11.54, 2.24), 'B': (23.80, 1.15)}
ARCH_LETTER = {'tiny': 'T', 'small': 'S', 'base': 'B'}
# Relative L2 error allowed between the device and the CPU in fp32 with TF32 off for outputs and
# BN running statistics (the H200 run: 1e-6), and for autocast against fp32 (bf16 operands: 1e-3
# to 1e-2). Not for parameter gradients: see GRAD_FACTOR.
FP32_TOL, AMP_TOL = 1e-3, 5e-2
# Parameter gradients are compared with a float64 run on the CPU, the device's error against the
# CPU float32 error. The gradient of a deep stack of training-mode BNs is ill-conditioned: on the
# H200 CUDA and CPU float32 gradients were 2e-3 to 6e-3 apart (against a 1e-3 tolerance), and on
# the CPU alone float32 is 5e-3 to 7e-3 from float64 for HRFormer-S and -B and MMPose's TopDown
# (MMPose's own HRFormer: 3.4e-3), growing with backward depth from 2e-6 at the head to 6e-3 at
# the stem, in every parameter kind alike (benchmarks/grad_precision.py, docs/gpu.md). So the
# device passes when its error is within GRAD_FACTOR of the CPU's, overall and for each kind of
# parameter (module class, parameter name: a wrong CUDA kernel shows in its own kind even when
# that kind carries 0.0 % of the gradient norm, as the relative position bias tables do). Errors
# under GRAD_FLOOR pass whatever the CPU's (float32 rounding itself is 6e-8).
GRAD_FACTOR, GRAD_FLOOR = 10.0, 1e-6


class Table:
    """The one result table, rewritten to ``out`` (markdown and JSON) after every row."""

    def __init__(self, out: Path, meta: dict):
        self.out, self.meta, self.rows = out, meta, []
        self.last = time.perf_counter()  # the previous row's time (or its section's start)
        out.mkdir(parents=True, exist_ok=True)

    def add(self, section, what, setting='', reference='', ref_value='', value='', ratio='',
            check='', published='', note=''):
        """Appends a row (the columns of :data:`COLUMNS`), prints it and rewrites the files."""
        self.rows.append(dict(zip(COLUMNS, (section, what, setting, reference, ref_value, value,
                                            ratio, check, published, note))))
        now = time.perf_counter()
        # seconds since the previous row (the first of a section: with its setup), in the JSON
        # only: the next run's estimates, and what Budget reads
        self.rows[-1]['s'] = round(now - self.last, 1)
        self.last = now
        print(f'[{section}] {what} {setting}: {value} {ratio} {check} {note}'.rstrip(),
              flush=True)
        self.write()

    def longest(self, section) -> float:
        """The most seconds one row of ``section`` took so far (0 before its first)."""
        return max((r['s'] for r in self.rows
                    if r['section'] == section and r['check'] != 'skipped'), default=0.0)

    def failed(self) -> list:
        """The rows whose check failed or whose section broke."""
        return [r for r in self.rows if r['check'] in ('FAIL', 'ERROR')]

    def markdown(self) -> str:
        """The metadata as a list, then the table."""
        lines = [f'# GPU check: {self.meta["device name"]}', '']
        lines += [f'- {k}: {v}' for k, v in self.meta.items()] + ['']
        lines += ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
        for r in self.rows:
            lines.append('| ' + ' | '.join(str(r[c]).replace('|', '\\|') for c in COLUMNS) + ' |')
        return '\n'.join(lines) + '\n'

    def write(self):
        """Rewrites gpu_check.md and gpu_check.json under the output folder."""
        self.meta['elapsed s'] = round(time.perf_counter() - START, 1)
        (self.out / 'gpu_check.md').write_text(self.markdown())
        (self.out / 'gpu_check.json').write_text(json.dumps(
            dict(meta=self.meta, columns=COLUMNS, rows=self.rows), indent=1))


START = time.perf_counter()


class OutOfBudget(Exception):
    """The rest of a section does not fit in ``--budget-s`` (raised by :meth:`Budget.need`, or
    by the alarm at the budget's end)."""


class Budget:
    """What is left of ``--budget-s``, checked before each row (or group of rows measured
    together), not only between sections.

    The next row of a section is expected to take as long as its longest row so far (the first:
    :data:`FIRST_ROW_S`); when that is more than what is left, the section ends with a 'skipped'
    row and the next section gets its chance. As a backstop an alarm cuts off a row still
    running :data:`GRACE_S` after the budget's end. The dry run (``--quick``) has no budget.
    """

    def __init__(self, seconds: float, enabled: bool):
        self.end = START + seconds if enabled else math.inf
        self.armed = False  # the alarm raises only while a section runs (main's try blocks)

    def left(self) -> float:
        return self.end - time.perf_counter()

    def need(self, table, section, what, seconds=None):
        """Raises :class:`OutOfBudget` unless the next row of ``section`` fits (``seconds``: its
        own estimate)."""
        need = seconds or table.longest(section) or FIRST_ROW_S[section]
        if self.left() < need:
            raise OutOfBudget(f'{what}: {max(self.left(), 0):.0f} s of the budget left, about '
                              f'{need:.0f} s needed')

    @contextlib.contextmanager
    def alarm(self):
        """SIGALRM at the budget's end plus GRACE_S raises OutOfBudget in the main thread."""
        if math.isinf(self.end) or not hasattr(signal, 'setitimer'):
            yield
            return

        def cut_off(signum, frame):
            if self.armed:  # elsewhere the next need() stops the section
                self.armed = False
                raise OutOfBudget(f'cut off mid-row, {GRACE_S} s after the end of the budget')
        previous = signal.signal(signal.SIGALRM, cut_off)
        signal.setitimer(signal.ITIMER_REAL, max(self.left() + GRACE_S, 0.1))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


# Seconds the first row (or group of rows measured together) of each section is expected to take
# on the H200, its setup included (2026-12-04: env 0.9 s for 4 rows; correct 28.8 s for 4 model
# comparisons, now with a float64 run each; amp 44.6 s for 3 Runner runs; backbone: over 260 s
# for 21 rows, about 15 s per timed row with its cuDNN autotuning; ocrnet 128.7 s for 3 blocks;
# profile 21.4 s). Later rows are expected to take as long as the longest one so far.
FIRST_ROW_S = dict(train=60, env=2, correct=20, amp=20, backbone=30, ocrnet=60, profile=25,
                   compile=60)
GRACE_S = 30


# ---- helpers -------------------------------------------------------------------------------

@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 for matmuls and cuDNN convolutions on or off inside the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def dtype_label(dtype) -> str:
    """'fp32' for no autocast (None), else 'AMP bf16' / 'AMP fp16'."""
    names = {torch.bfloat16: 'AMP bf16', torch.float16: 'AMP fp16'}
    return 'fp32' if dtype is None else names[dtype]


def rel_err(got, want) -> float:
    """||got - want|| / ||want|| over all the tensors together (float64 sums)."""
    num = sum((g.detach().double().cpu() - w.detach().double().cpu()).pow(2).sum()
              for g, w in zip(got, want))
    den = sum(w.detach().double().cpu().pow(2).sum() for w in want)
    return math.sqrt(num / max(den, 1e-300))


def verdict(err: float, tol: float) -> str:
    """'pass' for a finite error within ``tol``, else 'FAIL' (NaN never passes)."""
    return 'pass' if math.isfinite(err) and err <= tol else 'FAIL'


def grads_of(model) -> list:
    """The gradients the last backward pass left on ``model``'s parameters."""
    return [p.grad for p in model.parameters() if p.grad is not None]


def running_stats(model) -> list:
    """The BN running means and variances of ``model`` (the tensors, not copies)."""
    return [b for name, b in model.named_buffers()
            if name.endswith(('running_mean', 'running_var'))]


def ms(seconds: float) -> str:
    """Seconds as a milliseconds cell."""
    return f'{seconds * 1e3:.1f} ms'


def tflops(flops: float, seconds: float, peak: float) -> str:
    """Achieved TFLOP/s and its share of the measured matmul rate ``peak`` (TFLOP/s)."""
    rate = flops / seconds / 1e12
    text = f'{rate:.2f} TFLOP/s' if rate >= 0.1 else f'{rate * 1e3:.1f} GFLOP/s'
    return f'{text} ({rate / peak:.0%} of matmul)' if peak else text


def ratio_cell(timing) -> str:
    """'ratio (lowest-highest)' from :func:`backbone_speed.timed_row`'s result."""
    return f'{timing[2]:.2f}x ({timing[3]})'


def plain(cfg, keep_randomness=False):
    """A model config for one process: SyncBN -> BN, no pretrained weights; for correctness also
    without the random parts (drop path, dropout, batch mixing)."""
    from mmengine.config import ConfigDict
    if isinstance(cfg, dict):
        out = ConfigDict()
        for key, value in cfg.items():
            if key == 'type' and value == 'SyncBN':
                value = 'BN'
            elif (key == 'init_cfg' and isinstance(value, dict)
                  and value.get('type') == 'Pretrained'):
                value = None
            elif key == 'pretrained' and isinstance(value, str):
                value = None
            elif not keep_randomness and key in ('drop_path_rate', 'dropout_ratio'):
                value = 0.0
            elif not keep_randomness and key == 'train_cfg' and 'augments' in value:
                value = None
            out[key] = plain(value, keep_randomness)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(plain(v, keep_randomness) for v in cfg)
    return cfg


def model_cfg(path: str, **kwargs):
    """The ``model`` of a config file (this repository's, or a host's by its .mim path)."""
    from mmengine.config import Config
    return plain(Config.fromfile(str(path)).model, **kwargs)


def mmseg_config(rel: str) -> Path:
    """A config shipped inside the installed MMSeg (its .mim folder), by its relative path."""
    import mmseg
    return Path(mmseg.__file__).parent / '.mim' / rel


def build(host: str, cfg):
    """Builds ``cfg`` from ``host``'s model registry (mmseg, mmpose or mmpretrain)."""
    from mmhrformer.checkpoint import build_in_host
    return build_in_host(host, cfg)


# ---- env -----------------------------------------------------------------------------------

def section_env(args, table, ctx):
    """Matmul rates of the device; stores them in ``ctx['peak']`` (TFLOP/s per autocast dtype)."""
    n = args.matmul_size
    rates = {}
    ctx['budget'].need(table, 'env', 'matmul rates')
    for label, dtype, allow in (('fp32 (TF32 off)', torch.float32, False),
                                ('TF32', torch.float32, True), ('bf16', torch.bfloat16, False),
                                ('fp16', torch.float16, False)):
        if args.device == 'cpu' and label == 'TF32':
            continue
        a = torch.randn(n, n, device=args.device, dtype=dtype)
        b = torch.randn(n, n, device=args.device, dtype=dtype)
        with tf32(allow):
            t = statistics.median(interleaved({'mm': lambda: a @ b}, args.device, 2,
                                              args.repeats)['mm'])
        rates[label] = 2 * n**3 / t / 1e12
        table.add('env', f'matmul {n}^3', label, value=tflops(2 * n**3, t, None),
                  note='random operands; median of timed products after 2 warm-ups')
    ctx['peak'] = {None: rates['fp32 (TF32 off)'], torch.bfloat16: rates['bf16'],
                   torch.float16: rates['fp16']}


# ---- correct -------------------------------------------------------------------------------

def device_vs_cpu(model, run, device) -> dict:
    """``run(model, where, dtype)`` for the model on the CPU (float32), a copy on ``device``
    (float32) and a float64 copy on the CPU (the gradients' reference): {'cpu' | 'device' |
    'fp64': (outputs, {parameter name: gradient}, running statistics)}."""
    # the copies before the CPU run changes the running statistics
    copies = (('cpu', model, 'cpu', torch.float32),
              ('device', copy.deepcopy(model).to(device), device, torch.float32),
              ('fp64', copy.deepcopy(model).double(), 'cpu', torch.float64))
    results = {}
    for key, m, where, dtype in copies:
        m.zero_grad(set_to_none=True)
        outs = run(m, where, dtype)
        results[key] = (outs, named_grads(m), running_stats(m))
    return results


def named_grads(model) -> dict:
    """{parameter name: gradient} of the parameters the last backward pass reached."""
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def param_kinds(model) -> dict:
    """{parameter name: 'ModuleClass.parameter'}: the groups of :func:`grad_verdict`."""
    return {f'{prefix}.{n}'.lstrip('.'): f'{type(m).__name__}.{n}'
            for prefix, m in model.named_modules() for n, _ in m.named_parameters(recurse=False)}


def grad_verdict(dev: dict, cpu: dict, ref: dict, kinds: dict):
    """(verdict, device error, CPU error, worst kind's text) of the device's and the CPU's
    float32 gradients against the float64 ``ref`` ({name: tensor} each): 'pass' when the
    device's relative L2 error is within :data:`GRAD_FACTOR` of the CPU's (or under
    :data:`GRAD_FLOOR`), for all gradients together and for each kind of parameter."""
    groups = {'all': list(ref)}  # first: d_all below
    for name in ref:
        groups.setdefault(kinds.get(name, 'other'), []).append(name)
    def dist(got, names):  # L2 distance to the reference, float64 sums
        return math.sqrt(sum(float((got[n].detach().double().cpu() - ref[n].double().cpu())
                                   .pow(2).sum()) for n in names))

    rows = []  # (good, rank for naming it, text, device error, CPU error)
    for group, names in groups.items():
        norm = dist({n: torch.zeros_like(ref[n]) for n in names}, names)
        d_dev, d_cpu = dist(dev, names), dist(cpu, names)
        e_dev, e_cpu = d_dev / max(norm, 1e-300), d_cpu / max(norm, 1e-300)
        factor = e_dev / e_cpu if e_cpu > 0 else (math.inf if e_dev > 0 else 1.0)
        if group == 'all':
            d_all = d_cpu
        if e_cpu >= 1:
            # A gradient that is zero up to rounding (a conv bias right before a training BN: the
            # CPU's float32 is 5e8 times the float64 value): its rounding noise only has to stay
            # small beside the whole model's.
            good = d_dev <= GRAD_FACTOR * d_all
            shown = f'{group} (zero up to rounding): abs. {d_dev:.1e} vs CPU {d_cpu:.1e}'
            rank = factor if not good else 0.0  # named only when it fails
        else:
            good = math.isfinite(e_dev) and (e_dev <= GRAD_FLOOR or factor <= GRAD_FACTOR)
            shown, rank = f'{group}: {e_dev:.1e} vs CPU {e_cpu:.1e}', factor
        rows.append((good, rank, f'{shown} ({factor:.1f}x)', e_dev, e_cpu))
    # the kind to name in the row: a failing one first, then the largest ratio
    worst = max(rows[1:], key=lambda r: (not r[0], r[1]), default=None)
    text = '' if worst is None else f'; worst kind {worst[2]}'
    return ('pass' if all(r[0] for r in rows) else 'FAIL'), rows[0][3], rows[0][4], text


def add_comparison(table, what, setting, results, kinds, device):
    """A correctness row from :func:`device_vs_cpu`'s results: outputs and running statistics
    against the CPU (:data:`FP32_TOL`), parameter gradients against float64
    (:func:`grad_verdict`)."""
    (o_cpu, g_cpu, s_cpu), (o_dev, g_dev, s_dev), (_, g_ref, _) = (
        results[k] for k in ('cpu', 'device', 'fp64'))
    e_out, e_stats = rel_err(o_dev, o_cpu), rel_err(s_dev, s_cpu)
    grad_check, e_dev, e_cpu, worst = grad_verdict(g_dev, g_cpu, g_ref, kinds)
    cells = f'outputs {e_out:.1e}' + (f', BN running statistics {e_stats:.1e}' if s_cpu else '')
    check = ('pass' if verdict(max(e_out, e_stats), FP32_TOL) == 'pass' and grad_check == 'pass'
             else 'FAIL')
    table.add('correct', what, setting, 'same model on the CPU; gradients: float64 on the CPU',
              '', f'rel. L2 error: {cells}; parameter gradients vs fp64: {device} {e_dev:.1e}, '
              f'cpu fp32 {e_cpu:.1e}', '', check,
              note=f'{device} vs cpu, fp32, TF32 off; tolerance {FP32_TOL:g} (outputs, '
              f'statistics), gradients within {GRAD_FACTOR:g}x the CPU fp32 error (or under '
              f'{GRAD_FLOOR:g}) overall and per parameter kind{worst}'
              + (' (device = cpu: the plumbing only)' if device == 'cpu' else ''))


def backbone_run(x):
    """A run for :func:`device_vs_cpu`: eval forward, then a training forward and backward."""
    def run(model, where, dtype):
        inp = x.to(where, dtype)
        model.eval()
        with torch.no_grad():
            eval_out = [o.float() for o in model(inp)]
        model.train()
        out = model(inp)
        sum(o.pow(2).mean() for o in out).backward()
        return eval_out + [o.detach().float() for o in out]
    return run


def samples_to(samples, where, dtype):
    """Copies of the data samples on ``where``, their floating-point targets (heatmaps, keypoint
    weights) in ``dtype`` and the rest (labels) as they are."""
    out = []
    for s in samples:
        s = s.clone().to(where)
        for field in s.all_values():
            for key in list(field.keys()) if hasattr(field, 'keys') else []:
                value = field.get(key)
                if torch.is_tensor(value) and value.is_floating_point():
                    field.set_field(value.to(dtype), key)
        out.append(s)
    return out


def host_run(inputs, samples):
    """One training forward and backward through the host's own ``loss`` and ``parse_losses``."""
    def run(model, where, dtype):
        model.train()
        losses = model.loss(inputs.to(where, dtype), samples_to(samples, where, dtype))
        loss, log_vars = model.parse_losses(losses)
        loss.backward()
        return [v.detach().float().reshape(1) for k, v in log_vars.items() if 'loss' in k]
    return run


def section_correct(args, table, ctx):
    """Device against CPU for the backbone and the hosts' models, the FFN chain, SDPA."""
    device = args.device
    torch.manual_seed(0)
    with tf32(False):
        for arch in args.archs:
            ctx['budget'].need(table, 'correct', f'HRFormer-{ARCH_LETTER[arch]} backbone')
            model = trained_like(HRFormer(arch=arch))
            x = torch.randn(args.correct_batch, 3, *args.pose_hw)
            add_comparison(table, f'HRFormer-{ARCH_LETTER[arch]} backbone: eval forward; train '
                           'forward + backward', shape_of(x),
                           device_vs_cpu(model, backbone_run(x), device), param_kinds(model),
                           device)
        seg_hw = args.seg_correct_hw
        hosts = (
            ('mmseg', 'MMSeg OCRNet (HRFormer-S config)', SEG_CONFIGS['S'],
             builders.seg_batch(19, n=args.correct_batch, size=seg_hw)),
            ('mmpose', 'MMPose TopdownPoseEstimator + HeatmapHead (HRFormer-S config)', POSE_CONFIG,
             builders.pose_batch(n=args.correct_batch, size=args.pose_hw[::-1])),
            ('mmpretrain', 'MMPretrain ImageClassifier + HRFormerClsNeck (HRFormer-S config)',
             CLS_CONFIG, builders.cls_batch(1000, n=args.correct_batch, size=args.cls_hw)),
        )
        for host, name, path, (inputs, samples) in hosts:
            ctx['budget'].need(table, 'correct', name)
            cfg = model_cfg(ROOT / path)
            cfg.pop('data_preprocessor', None)  # the batches are model inputs already
            model = trained_like_host(build(host, cfg))
            add_comparison(table, f'{name}: loss + backward', shape_of(inputs),
                           device_vs_cpu(model, host_run(inputs, samples), device),
                           param_kinds(model), device)
    ctx['budget'].need(table, 'correct', 'FFN chain')
    ffn_chain_rows(args, table)
    ctx['budget'].need(table, 'correct', 'SDPA backends')
    sdpa_rows(args, table)


def trained_like_host(model):
    """Random BN statistics and weights of a trained model in every BN of a host model."""
    return builders.randomize_bn(model)


def plain_ffn(ffn, x):
    """The FFN as separate autograd ops: ``conv_bn`` runs a training-mode norm as written."""
    for conv, norm in ((ffn.fc1, ffn.norm1), (ffn.dw3x3, ffn.norm2), (ffn.fc2, ffn.norm3)):
        x = conv_bn(x, conv, norm, 'gelu')
    return x


def ffn_chain_rows(args, table):
    """The FFN chain against plain autograd on the device, in fp32 and under autocast."""
    device = args.device
    for arch, channels in (('S', 32), ('B', 78)):
        torch.manual_seed(0)
        ffn = builders.randomize_bn(ConvFFN(channels, 4 * channels, dict(type='BN'))).to(device)
        ffn.train()
        for dtype in (None, torch.bfloat16, torch.float16):
            chain, reference = copy.deepcopy(ffn), copy.deepcopy(ffn)
            x = torch.randn(args.ffn_batch, channels, *args.ffn_hw, device=device).contiguous(
                memory_format=torch.channels_last)
            x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
            with tf32(False), autocast(device, dtype):
                out, expected = chain(x1), plain_ffn(reference, x2)
            grad = torch.randn_like(out)
            with tf32(False):
                out.backward(grad)
                expected.backward(grad)
            # A conv bias right before a training BN has a zero gradient up to rounding: only
            # the concatenated gradients are compared, where such noise weighs nothing.
            errs = {'output': rel_err([out], [expected]),
                    'input grad': rel_err([x1.grad], [x2.grad]),
                    'parameter grads': rel_err(grads_of(chain), grads_of(reference)),
                    'running stats': rel_err(running_stats(chain), running_stats(reference))}
            tol = FP32_TOL if dtype is None else AMP_TOL
            table.add('correct', f'FFN chain (ConvBNGELUChain) vs plain autograd, {arch} width '
                      f'{channels}', dtype_label(dtype), 'plain autograd, same device', '',
                      ', '.join(f'{k} {v:.1e}' for k, v in errs.items()), '',
                      verdict(max(errs.values()), tol),
                      note=f'{device}, {shape_of(x)} channels_last; rel. L2; tolerance {tol:g}')


SDPA_OPS = ('scaled_dot_product', 'flash_attention', 'efficient_attention', 'cudnn_attention')


def attention_ops(fn) -> list:
    """The attention kernels' ATen op names that ``fn`` runs (forward and backward)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = {e.key for e in prof.key_averages()}
    found = sorted(n for n in names if any(k in n for k in SDPA_OPS)
                   and n != 'aten::scaled_dot_product_attention')
    return found or ['no SDPA (the written-out matmul + softmax path)']


def sdpa_rows(args, table):
    """Which SDPA backends accept the window attention's shapes, and which one runs by default.

    The relative position bias is an additive mask that needs a gradient in training, which
    rules out the flash kernel (no mask); head dim 39 (B) is not a multiple of 8.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from mmhrformer.layers import attention
    device = args.device
    windows = args.sdpa_windows
    backends = [b for b in ('FLASH_ATTENTION', 'EFFICIENT_ATTENTION', 'CUDNN_ATTENTION', 'MATH')
                if hasattr(SDPBackend, b)]
    for arch, heads, head_dim in (('S', 1, 32), ('B', 2, 39)):
        for dtype in (torch.float32, torch.bfloat16):
            for mode in ('inference', 'training'):
                train = mode == 'training'

                def tensors():
                    q, k, v = (torch.randn(windows, heads, 49, head_dim, device=device,
                                           dtype=dtype, requires_grad=train) for _ in range(3))
                    mask = (0.02 * torch.randn(1, heads, 49, 49, device=device, dtype=dtype)
                            ).requires_grad_(train)
                    return q, k, v, mask

                def call(fn):
                    q, k, v, mask = tensors()
                    with torch.set_grad_enabled(train):
                        out = fn(q, k, v, mask)
                        if train:
                            out.float().sum().backward()

                accepted = []
                for name in backends:
                    try:
                        # a refusing backend warns why before raising: the row says it
                        with warnings.catch_warnings(), sdpa_kernel(getattr(SDPBackend, name)):
                            warnings.simplefilter('ignore')
                            call(lambda q, k, v, m: F.scaled_dot_product_attention(
                                q, k, v, attn_mask=m))
                        accepted.append(name.split('_')[0].lower())
                    except RuntimeError:
                        pass
                default = attention_ops(lambda: call(
                    lambda q, k, v, m: attention(torch.stack((q, k, v)), m)))
                table.add('correct', f'SDPA backends, {arch} window attention (head dim '
                          f'{head_dim})', f'{mode}, {str(dtype).split(".")[-1]}',
                          value='accepted: ' + (', '.join(accepted) or 'none'),
                          note='default runs: ' + ', '.join(default)
                          + f'; q/k/v {windows}x{heads}x49x{head_dim}, additive bias mask')


# ---- amp -----------------------------------------------------------------------------------

def quickstart_cfg(work_dir, name, iters):
    """The quickstart config for ``iters`` training iterations in ``work_dir``, without
    validation, checkpoints or pictures."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / QUICKSTART))
    cfg.work_dir, cfg.experiment_name = str(work_dir / name), name
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = iters
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None  # None drops a default hook; others must go
    cfg.default_hooks.pop('visualization', None)
    cfg.default_hooks.logger.interval = iters
    cfg.visualizer.name = name
    cfg.log_level = 'WARNING'
    return cfg


def runner_losses(args, amp_dtype, work_dir):
    """Per-iteration losses of the quickstart config through MMSeg's Runner."""
    from mmengine.runner import Runner
    cfg = quickstart_cfg(work_dir, f'gpu_check_{dtype_label(amp_dtype).replace(" ", "_")}',
                         args.amp_iters)
    if args.quick:  # 2 images a batch, not 8: the dry run checks the plumbing
        cfg.train_dataloader.batch_size = 2
    on_cuda = args.device == 'cuda'
    if amp_dtype is not None and on_cuda:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = str(amp_dtype).split('.')[-1]
        cfg.optim_wrapper.loss_scale = 'dynamic'
    runner = Runner.from_cfg(cfg)
    # MMEngine's AmpOptimWrapper refuses a machine without CUDA: there the same loop runs under
    # the autocast that the wrapper would have opened.
    context = (torch.autocast('cpu', dtype=amp_dtype) if amp_dtype is not None and not on_cuda
               else contextlib.nullcontext())
    with context:
        runner.train()
    losses = [float(v) for v in runner.message_hub.get_scalar('train/loss').data[0]]
    scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
    return losses, (None if scaler is None else scaler.get_scale())


def section_amp(args, table, ctx):
    """The quickstart config through the Runner in fp32, AMP fp16 and AMP bf16."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx['budget'].need(table, 'amp', 'fp32 run')
        base, _ = runner_losses(args, None, Path(tmp))
        table.add('amp', f'quickstart OCRNet-HRFormer-T, MMSeg Runner, {len(base)} iterations',
                  'fp32', value=f'loss {base[0]:.4f} -> {base[-1]:.4f}',
                  check='pass' if all(map(math.isfinite, base)) else 'FAIL',
                  note='finite losses')
        for dtype in (torch.float16, torch.bfloat16):
            ctx['budget'].need(table, 'amp', f'{dtype_label(dtype)} run')
            losses, scale = runner_losses(args, dtype, Path(tmp))
            first = abs(losses[0] - base[0]) / abs(base[0])
            worst = max(abs(a - b) / abs(b) for a, b in zip(losses, base))
            finite = all(map(math.isfinite, losses))
            how = ('AmpOptimWrapper' + (', dynamic loss scale' if dtype == torch.float16 else '')
                   if args.device == 'cuda' else 'autocast around the Runner (AmpOptimWrapper '
                   'needs CUDA)')
            table.add('amp', f'quickstart OCRNet-HRFormer-T, MMSeg Runner, {len(losses)} '
                      'iterations', dtype_label(dtype), 'fp32 run, same seed and data',
                      f'loss {base[0]:.4f} -> {base[-1]:.4f}',
                      f'loss {losses[0]:.4f} -> {losses[-1]:.4f}',
                      check='pass' if finite and first <= AMP_TOL else 'FAIL',
                      note=f'{how}; |dloss|/loss first iteration {first:.1e} (tolerance '
                      f'{AMP_TOL:g}), worst iteration {worst:.1e}'
                      + ('' if scale is None else f'; final loss scale {scale:g}'))


# ---- backbone ------------------------------------------------------------------------------

def autocast(device, dtype):
    """Autocast to ``dtype``, or no autocast at all for None (fp32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device, dtype=dtype)


def autocast_call(fn, device, dtype):
    """``fn`` as a no-grad call under :func:`autocast`."""
    def call():
        with torch.no_grad(), autocast(device, dtype):
            fn()
    return call


def section_backbone(args, table, ctx):
    """Speed and memory of the backbone against MMPose's HRFormer and HRNet-W32."""
    device, peak = args.device, ctx.get('peak', {})
    x = torch.randn(args.pose_batch, 3, *args.pose_hw, device=device)
    hrnet = None
    budget = ctx['budget']
    for arch in args.archs:
        letter = ARCH_LETTER[arch]
        budget.need(table, 'backbone', f'{letter} rows')
        torch.manual_seed(0)
        ours, theirs = build_pair(arch, device)
        refs = {'MMPose HRFormer': theirs}
        if arch != 'base':  # B has 2.5x HRNet-W32's FLOPs: that comparison says little
            hrnet = hrnet or mmpose_hrnet_w32().to(device)
            refs['MMPose HRNet-W32'] = hrnet
        ours.eval(), theirs.eval()
        with torch.no_grad():
            diff = max_abs_diff(ours(x), theirs(x))
            flops = {'ours': count_flops(ours, x)}
            flops.update({name: count_flops(in_eval(m), x) for name, m in refs.items()})
        table.add('backbone', f'{letter} outputs vs MMPose HRFormer (same weights)', shape_of(x),
                  'MMPose HRFormer', value=diff, note=f'{device}, eval, fp32 defaults')
        for ref_name, ref in refs.items():
            for dtype in args.dtypes:
                budget.need(table, 'backbone', f'{letter} inference {dtype_label(dtype)} vs '
                            f'{ref_name}')
                in_eval(ref), ours.eval()
                timing = timed_row(interleaved(
                    {'ours': autocast_call(lambda: ours(x), device, dtype),
                     'ref': autocast_call(lambda: ref(x), device, dtype)},
                    device, args.warmup, args.repeats), 'ref')
                table.add('backbone', f'{letter} inference', f'{shape_of(x)} {dtype_label(dtype)}',
                          ref_name, ms(timing[0]), ms(timing[1]), ratio_cell(timing),
                          note=f'ours {tflops(flops["ours"], timing[1], peak.get(dtype))}; '
                          f'ref {tflops(flops[ref_name], timing[0], peak.get(dtype))}')
            for dtype in args.dtypes:
                budget.need(table, 'backbone', f'{letter} train step {dtype_label(dtype)} vs '
                            f'{ref_name}')
                ours.train(), ref.train()
                timing = timed_row(interleaved(
                    {'ours': train_step_fn(ours, x, device, dtype),
                     'ref': train_step_fn(ref, x, device, dtype)},
                    device, args.warmup, args.repeats), 'ref')
                # forward + backward ~ 3x the forward's FLOPs
                table.add('backbone', f'{letter} train step (fwd + bwd + AdamW)',
                          f'{shape_of(x)} {dtype_label(dtype)}', ref_name, ms(timing[0]),
                          ms(timing[1]), ratio_cell(timing),
                          note=f'ours {tflops(3 * flops["ours"], timing[1], peak.get(dtype))}; '
                          f'ref {tflops(3 * flops[ref_name], timing[0], peak.get(dtype))}')
        if device == 'cuda':
            for dtype in args.dtypes:
                budget.need(table, 'backbone', f'{letter} memory {dtype_label(dtype)}')
                mem = {name: step_peak_memory(train_step_fn(m, x, device, dtype), m)
                       for name, m in (('ours', ours), ('theirs', theirs))}
                table.add('backbone', f'{letter} peak CUDA memory, train step',
                          f'{shape_of(x)} {dtype_label(dtype)}', 'MMPose HRFormer',
                          gib(mem['theirs']), gib(mem['ours']),
                          f'{mem["theirs"] / mem["ours"]:.2f}x',
                          note='max_memory_allocated during a step, less what was allocated '
                          'before it (weights, optimizer state and other models stay out)')
        ours = theirs = refs = None  # frees this arch's models before the next is built


def gib(nbytes: float) -> str:
    """Bytes as a GiB cell."""
    return f'{nbytes / 2**30:.2f} GiB'


def step_peak_memory(step, model) -> int:
    """Peak allocator bytes of one training step above what was allocated before it."""
    model.train()
    step()  # the optimizer's state exists from here on
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


# ---- ocrnet --------------------------------------------------------------------------------

def seg_models(args, hw):
    """OCRNet-HRNetV2p-W48 (MMSeg's config) and OCRNet-HRFormer-S / -B (ours), training setup
    of their configs (drop path, dropout), BN for one process, padded to the input size."""
    cfgs = {'W48': model_cfg(mmseg_config(W48_CONFIG), keep_randomness=True)}
    cfgs.update({k: model_cfg(ROOT / p, keep_randomness=True) for k, p in SEG_CONFIGS.items()
                 if k in args.seg_archs})
    models = {}
    for name, cfg in cfgs.items():
        cfg.data_preprocessor.size = tuple(hw)
        models[name] = builders.randomize_bn(build('mmseg', cfg))
    return models


def host_step(model, data, device, dtype):
    """The host's own ``train_step`` with MMEngine's optimizer wrapper (AmpOptimWrapper for AMP
    on CUDA; on a CPU autocast around the step, as that wrapper refuses to run there)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    # fused: one kernel for all parameters, as the shipped configs ask for
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    if dtype is not None and device == 'cuda':
        wrapper = AmpOptimWrapper(optimizer=optimizer, dtype=dtype, loss_scale='dynamic')
        outer = None  # the wrapper's optim_context autocasts the forward
    else:
        wrapper, outer = OptimWrapper(optimizer=optimizer), dtype

    def step():
        model.train()
        with autocast(device, outer):
            model.train_step(data, wrapper)
    return step


def section_ocrnet(args, table, ctx):
    """OCRNet-HRFormer-S / -B against MMSeg's OCRNet-HRNetV2p-W48: training, memory, fps."""
    device, peak = args.device, ctx.get('peak', {})
    ctx['budget'].need(table, 'ocrnet', 'models and fp32 train steps')
    hw = args.seg_train_hw
    models = seg_models(args, hw)
    for m in models.values():
        m.to(device)
    inputs, samples = builders.seg_batch(19, n=2, size=hw)
    data = dict(inputs=[(255 * img).to(torch.uint8) for img in inputs], data_samples=samples)
    x = torch.randn(1, 3, *hw, device=device)
    with torch.no_grad():
        flops = {k: count_flops(in_eval(m), x) for k, m in models.items()}
    train_flops = {k: 2 * f for k, f in flops.items()}  # two images a step
    # fp16 as the official runs (apex AMP); a CPU has neither fast fp16 nor bf16 convolutions (a
    # bf16 step of OCRNet-S took 25 s at 2x3x64x128 in the dry run): fp32 alone there
    for dtype in (None, torch.float16) if device == 'cuda' else (None, ):
        ctx['budget'].need(table, 'ocrnet', f'train steps {dtype_label(dtype)}')
        steps = {k: host_step(m, data, device, dtype) for k, m in models.items()}
        if device == 'cuda':
            mem = {k: step_peak_memory(steps[k], models[k]) + 3 * param_bytes(models[k])
                   for k in models}
        times = interleaved(steps, device, args.warmup, args.seg_repeats)
        setting = f'2x3x{hw[0]}x{hw[1]} {dtype_label(dtype)}'
        for arch in args.seg_archs:
            timing = timed_row(times, 'W48', arch)
            table.add('ocrnet', f'OCRNet-HRFormer-{arch} train step (host train_step, AdamW)',
                      setting, 'OCRNet-HRNetV2p-W48 (MMSeg)', ms(timing[0]), ms(timing[1]),
                      ratio_cell(timing),
                      note=f'ours {tflops(3 * train_flops[arch], timing[1], peak.get(dtype))}; '
                      f'W48 {tflops(3 * train_flops["W48"], timing[0], peak.get(dtype))}')
        if device == 'cuda':
            for arch in args.seg_archs:
                table.add('ocrnet', f'OCRNet-HRFormer-{arch} peak CUDA memory, train step',
                          setting, 'OCRNet-HRNetV2p-W48 (MMSeg)', gib(mem['W48']),
                          gib(mem[arch]), f'{mem["W48"] / mem[arch]:.2f}x',
                          published=f'W48 {PUBLISHED["W48"][0]} GB, {arch} {PUBLISHED[arch][0]} GB'
                          if dtype is None else '',
                          note='weights + AdamW state + the step\'s peak above them (grads, '
                          'activations); the published W48 run trained with SGD')
    ctx['budget'].need(table, 'ocrnet', 'inference')
    infer_hw = args.seg_infer_hw
    big = torch.randn(1, 3, *infer_hw, device=device)
    with torch.no_grad():
        infer_flops = {k: count_flops(m, big) for k, m in models.items()}

    def predict(m):
        def call():
            with torch.no_grad():
                m.predict(big)
        return call
    for m in models.values():
        m.eval()
    times = interleaved({k: predict(m) for k, m in models.items()}, device, args.warmup,
                        args.seg_repeats)
    for arch in args.seg_archs:
        timing = timed_row(times, 'W48', arch)
        table.add('ocrnet', f'OCRNet-HRFormer-{arch} inference (predict: logits resized, argmax)',
                  f'{shape_of(big)} fp32', 'OCRNet-HRNetV2p-W48 (MMSeg)',
                  f'{1 / timing[0]:.2f} fps', f'{1 / timing[1]:.2f} fps', ratio_cell(timing),
                  published=f'W48 {PUBLISHED["W48"][1]} fps, {arch} {PUBLISHED[arch][1]} fps',
                  note=f'ours {tflops(infer_flops[arch], timing[1], peak.get(None))}; '
                  f'W48 {tflops(infer_flops["W48"], timing[0], peak.get(None))}')
    for m in models.values():
        m.cpu()


def param_bytes(model) -> int:
    """Bytes of the weights. They and AdamW's two states per weight are allocated before a step,
    below the base :func:`step_peak_memory` subtracts."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


# ---- profile -------------------------------------------------------------------------------

def section_profile(args, table, ctx):
    """The top ops of the S training step by self time (device time on CUDA)."""
    from torch.profiler import ProfilerActivity, profile
    device = args.device
    ctx['budget'].need(table, 'profile', 'profile of the S training step')
    model = trained_like(HRFormer(arch=args.archs[0])).to(device).train()
    x = torch.randn(args.pose_batch, 3, *args.pose_hw, device=device)
    step = train_step_fn(model, x, device)
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
    steps = 1 if args.quick else 2
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device == 'cuda':
            torch.cuda.synchronize()
    averages = prof.key_averages()
    key = 'self_device_time_total' if device == 'cuda' else 'self_cpu_time_total'
    try:
        text = averages.table(sort_by=key, row_limit=40)
    except (AttributeError, KeyError, ValueError):  # releases that only know the 'cuda' name
        text = averages.table(sort_by=key.replace('device', 'cuda'), row_limit=40)
    (args.out / 'profile.txt').write_text(text)
    if not hasattr(averages[0], key):
        key = key.replace('device', 'cuda')
    total = sum(getattr(e, key) for e in averages) or 1
    top = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:args.profile_top]
    for e in top:
        table.add('profile', e.key, f'{ARCH_LETTER[args.archs[0]]} train step {shape_of(x)} fp32',
                  value=f'{getattr(e, key) / steps / 1e3:.2f} ms/step',
                  ratio=f'{getattr(e, key) / total:.0%} of '
                  f'{"device" if device == "cuda" else "CPU"} self time',
                  note=f'{e.count // steps} calls/step; full table in profile.txt')


# ---- compile -------------------------------------------------------------------------------

def compile_child(args):
    """One compiled-vs-eager measurement (run in its own process, under a time limit)."""
    from torch._dynamo.utils import counters
    kind, mode = args.compile_child.split(':')
    device = args.device
    torch.backends.cudnn.benchmark = True  # as the eager speed sections
    model = trained_like(HRFormer(arch=MICRO_ARCH if args.quick else args.archs[0])).to(device)
    x = torch.randn(args.pose_batch, 3, *args.pose_hw, device=device)
    options = dict(backend='eager') if args.compile_backend == 'eager' else dict(mode=mode)
    compiled = torch.compile(model, **options)
    if kind == 'inference':
        model.eval()
        eager_fn = autocast_call(lambda: model(x), device, None)
        compiled_fn = autocast_call(lambda: compiled(x), device, None)
    else:
        model.train()
        eager_fn, compiled_fn = train_step_fn(model, x, device), train_step_fn(compiled, x, device)
    first = elapsed(compiled_fn, device)
    timing = timed_row(interleaved({'compiled': compiled_fn, 'eager': eager_fn}, device,
                                   args.warmup, args.repeats), 'eager', 'compiled')
    print('COMPILE_RESULT ' + json.dumps(dict(
        first=first, timing=timing, frames=counters['frames']['ok'],
        graphs=counters['stats']['unique_graphs'], shape=shape_of(x))))


def section_compile(args, table, ctx):
    """``torch.compile`` modes of the S backbone, each in a child process under the budget."""
    modes = ([('inference', 'default')] if args.compile_backend == 'eager' else
             [('inference', 'default'), ('inference', 'reduce-overhead'),
              ('train step', 'default'), ('inference', 'max-autotune-no-cudagraphs')])
    letter = 'micro' if args.quick else ARCH_LETTER[args.archs[0]]
    for kind, mode in modes:
        # each child is killed at the end of the budget (none in the dry run)
        ctx['budget'].need(table, 'compile', f'{letter} {kind}, torch.compile(mode={mode!r})')
        left = ctx['budget'].left()
        cmd = [sys.executable, __file__, '--compile-child', f'{kind}:{mode}'] + args.child_argv
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=None if left == math.inf else left)
        except subprocess.TimeoutExpired:
            table.add('compile', f'{letter} {kind}, torch.compile(mode={mode!r})',
                      check='timeout', note=f'not done within {left:.0f} s (budget)')
            continue
        result = next((json.loads(line.split(' ', 1)[1]) for line in proc.stdout.splitlines()
                       if line.startswith('COMPILE_RESULT ')), None)
        if result is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
            table.add('compile', f'{letter} {kind}, torch.compile(mode={mode!r})', check='ERROR',
                      note=f'exit {proc.returncode}: {tail[0][:200]}')
            continue
        timing = result['timing']
        backend = (' backend=eager (dynamo only: the dry run)'
                   if args.compile_backend == 'eager' else '')
        table.add('compile', f'{letter} {kind}, torch.compile(mode={mode!r}){backend}',
                  f'{result["shape"]} fp32', 'same model, eager', ms(timing[0]), ms(timing[1]),
                  ratio_cell(timing),
                  note=f'first call {result["first"]:.0f} s, process {time.perf_counter() - t0:.0f}'
                  f' s; {result["frames"]} frame(s), {result["graphs"]} graph(s)')


# ---- train ---------------------------------------------------------------------------------
# Issue #29: the training step eager, compiled and compiled with CUDA graphs, ours against the
# references each in its own modes (their users can compile too). Compiling costs minutes of one
# CPU core per model and mode while the GPU idles, so the compiles run in parallel child
# processes (--train-jobs at a time) and only their timed parts take turns: a child times its
# steps holding a lock file, moved onto cores that no compiling process uses.

TRAIN_MODELS = {  # key: (input group, label in a full run, label in the dry run)
    'S': ('pose', 'HRFormer-S', 'HRFormer micro'),
    'MMPose-S': ('pose', 'MMPose HRFormer-S', 'MMPose HRFormer-T'),
    'W32': ('pose', 'MMPose HRNet-W32', 'MMPose HRNet-W32'),
    'OCR-S': ('seg', 'OCRNet-HRFormer-S', 'OCRNet-HRFormer micro'),
    'W48': ('seg', 'MMSeg OCRNet-HRNetV2p-W48', 'MMSeg OCRNet-HRNetV2p-W18-Small'),
}
# The dry run's stand-in for ours: the smallest HRFormer (one module a stage), so that dynamo
# traces the training step in seconds on a CPU (HRFormer-T: 22 s, this one 11 s with
# backend='eager'; aot_eager took 72 s and 37 s).
MICRO_ARCH = dict(num_modules=(1, 1, 1), channels=(8, 16, 32, 64), num_heads=(1, 1, 2, 2))
W18S_CONFIG = 'configs/ocrnet/ocrnet_hr18s_4xb2-80k_cityscapes-512x1024.py'  # dry run's W48
TRAIN_GROUPS = ('fp32', 'amp', 'ddp', 'runner')
MODE_LABELS = {'eager': 'eager', 'default': 'torch.compile (default)',
               'reduce-overhead': "torch.compile 'reduce-overhead' (CUDA graphs)"}
# The goals of issue #29 (H200, fp32): (reference, ours, which modes, at least this ratio).
TRAIN_GOALS = (('W32', 'S', 'fastest', 1.5), ('MMPose-S', 'S', 'fastest', 2.0),
               ('MMPose-S', 'S', 'eager', 1.1), ('W48', 'OCR-S', 'fastest', 1.2))
# Seconds a job is expected to need before its first result on the H200 (estimates: no compile
# of these models was ever timed on a GPU; the CPU's took 486 s for S). A job starts only when
# the budget has that much left; it is cut at the budget's end, keeping the results it printed.
TRAIN_JOB_S = dict(eager=60, compiled=150, ddp=150, runner=90)


def train_label(args, key) -> str:
    return TRAIN_MODELS[key][2 if args.quick else 1]


def train_jobs(args) -> list:
    """The section's jobs in the order they start: every model eager (no compile), each model's
    compiled modes in fp32 (ours first), one-process DDP, the host's Runner, then AMP compiled."""
    groups, jobs = args.train_groups, []
    dtypes = [d for d, g in (('fp32', 'fp32'), ('bf16', 'amp')) if g in groups
              and (d == 'fp32' or args.device == 'cuda')]  # a CPU has no fast bf16 kernels
    if dtypes:
        jobs.append(dict(kind='eager', dtypes=dtypes))
    # The dry run compiles in the DDP job only (its dynamo trace alone is 20 s on a CPU): the
    # one-process jobs share all but the wrapper with it.
    compiled = () if args.quick else ('S', 'OCR-S', 'W32', 'W48')
    compiled_jobs = [dict(kind='compiled', model=m, dtype=d) for d in dtypes for m in compiled]
    jobs += [j for j in compiled_jobs if j['dtype'] == 'fp32']
    if 'ddp' in groups:
        # MMEngine's default first (Runner.wrap_model: broadcast_buffers=False)
        jobs.append(dict(kind='ddp', model='OCR-S', dtype='fp32', broadcast_buffers=[False, True]))
    if 'runner' in groups:
        jobs.append(dict(kind='runner', dtype='fp32'))
    return jobs + [j for j in compiled_jobs if j['dtype'] != 'fp32']


def compile_options(args, mode) -> dict:
    """``torch.compile`` options of a mode (the dry run on a CPU: dynamo alone)."""
    if args.compile_backend != 'inductor':
        return dict(backend=args.compile_backend, dynamic=False)
    return dict(dynamic=False) if mode == 'default' else dict(mode=mode, dynamic=False)


def train_modes(args) -> list:
    """Compiled modes: CUDA graphs first (the likely fastest; the default then finds the Triton
    kernels compiled); on a CPU only the default (CUDA graphs need CUDA)."""
    return ['reduce-overhead', 'default'] if args.device == 'cuda' else ['default']


def train_model(args, key, device):
    """(model, make_step) of a model of the section: ``make_step(model, dtype)`` is one training
    step as its users run it (a backbone: forward, a loss, backward, fused AdamW; a host model:
    its ``train_step`` with MMEngine's optimizer wrapper)."""
    torch.manual_seed(0)
    group = TRAIN_MODELS[key][0]
    if group == 'pose':
        if key == 'S':
            model = HRFormer(arch=MICRO_ARCH if args.quick else 'small')
        elif key == 'MMPose-S':
            model = mmpose_hrformer(args.archs[0])
        else:
            model = mmpose_hrnet_w32()
        model = trained_like(model).to(device)
        x = torch.randn(args.pose_batch, 3, *args.pose_hw, device=device)
        return model, lambda m, dtype: train_step_fn(m, x, device, dtype), shape_of(x)
    hw = args.seg_train_hw
    if key == 'W48':
        cfg = model_cfg(mmseg_config(W18S_CONFIG if args.quick else W48_CONFIG),
                        keep_randomness=True)
    elif args.quick:
        cfg = model_cfg(ROOT / QUICKSTART, keep_randomness=True)
        cfg.backbone.arch = MICRO_ARCH
        for head in cfg.decode_head:  # the batches have Cityscapes' 19 classes
            head.in_channels, head.num_classes = list(MICRO_ARCH['channels']), 19
    else:
        cfg = model_cfg(ROOT / SEG_CONFIGS['S'], keep_randomness=True)
    cfg.data_preprocessor.size = tuple(hw)
    model = builders.randomize_bn(build('mmseg', cfg)).to(device)
    inputs, samples = builders.seg_batch(19, n=2, size=hw)
    data = dict(inputs=[(255 * img).to(torch.uint8) for img in inputs], data_samples=samples)
    return model, lambda m, dtype: host_step(m, data, device, dtype), f'2x3x{hw[0]}x{hw[1]}'


class CudagraphLog(logging.Handler):
    """Collects inductor's warnings about CUDA graphs ("skipping cudagraphs due to mutated
    inputs (27 instances)"): the reason a 'reduce-overhead' graph launches kernels one by one."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        line = record.getMessage().splitlines()[0]
        if 'cudagraph' in line.lower() and line[:150] not in self.lines:
            self.lines.append(line[:150])


def launches(step, device):
    """Kernel and CUDA graph launches of one call of ``step`` (None without CUDA): whether the
    graphs were replayed, and how many launches are left around them."""
    if device != 'cuda':
        return None
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
    except RuntimeError as e:  # the profiler is a witness, not the measurement
        return dict(error=first_line(e))
    counts = dict(kernels=0, graphs=0)
    for e in prof.key_averages():
        if 'GraphLaunch' in e.key:
            counts['graphs'] += e.count
        elif 'LaunchKernel' in e.key:
            counts['kernels'] += e.count
    return counts


def first_line(e) -> str:
    return f'{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ""}'[:200]


def first_calls(step, model, device, calls=3):
    """Seconds of the first call (the compile, or cuDNN's tuning) and the peak memory of the
    first ``calls`` (CUDA graph trees record on the second or third; replays allocate nothing):
    the weights, AdamW's state, gradients, activations and the graphs' pool. None on a CPU."""
    cuda = device == 'cuda'
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(calls - 1 if cuda else 0):
        step()
    if not cuda:
        return first, None
    torch.cuda.synchronize()
    return first, torch.cuda.max_memory_allocated() - base + param_bytes(model)


class Turns:
    """One child times its steps at a time (an flock on the parent's lock file), on the cores
    kept free of compiling processes; the rest of the time it runs on the others."""

    def __init__(self, args):
        self.path = args.train_lock
        split = args.train_cores.split('/') if args.train_cores else None
        self.timing, self.compiling = ([set(map(int, s.split(','))) for s in split] if split
                                       else (None, None))
        self.pin(self.compiling)

    @staticmethod
    def pin(cores):
        if not cores:
            return
        for tid in os.listdir('/proc/self/task'):  # every thread: autograd's device thread too
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cores)

    @contextlib.contextmanager
    def timing_turn(self):
        if not self.path:
            yield
            return
        import fcntl
        with open(self.path, 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.pin(self.timing)
            try:
                yield
            finally:
                self.pin(self.compiling)
                fcntl.flock(lock, fcntl.LOCK_UN)


def emit(kind, **result):
    """One result line for the parent (it reads them while the child still runs)."""
    print(f'TRAIN_{kind} ' + json.dumps(result), flush=True)


def measure_compiled(args, turns, key, dtype, mode, eager_step, step, model, shape, extra=None):
    """Times a compiled step against the eager one and prints its result."""
    from torch._dynamo.utils import counters

    from mmhrformer.engine import cudagraph_counts
    device = args.device
    emit('PHASE', what=f'compiling {mode}')
    first, memory = first_calls(step, model, device)
    with turns.timing_turn():
        times = interleaved({'compiled': step, 'eager': eager_step}, device, args.warmup,
                            args.repeats)
        launch = launches(step, device)
    recorded, skipped = (cudagraph_counts(torch.cuda.current_device()) if device == 'cuda'
                         else (0, 0))
    emit('RESULT', model=key, dtype=dtype, mode=mode, times=times['compiled'],
         eager=times['eager'], first=first, memory=memory, launches=launch, shape=shape,
         recorded=recorded, skipped=skipped, log=CUDAGRAPH_LOG.lines[:3],
         frames=counters['frames']['ok'], graphs=counters['stats']['unique_graphs'],
         breaks=sum(counters['graph_break'].values()), **(extra or {}))
    CUDAGRAPH_LOG.lines.clear()


def reset_compiled(device):
    """Forgets what was compiled (and the CUDA graphs' pool) before the next mode."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    gc.collect()
    if device == 'cuda':
        torch.cuda.empty_cache()


def job_eager(args, turns, job):
    """Every model eager, each input group's models interleaved, per precision."""
    device = args.device
    for group in ('pose', 'seg'):
        built = {k: train_model(args, k, device) for k, v in TRAIN_MODELS.items()
                 if v[0] == group}
        for dtype in job['dtypes']:
            amp = None if dtype == 'fp32' else torch.bfloat16
            steps = {k: make(m, amp) for k, (m, make, _) in built.items()}
            firsts = {k: first_calls(steps[k], built[k][0], device) for k in steps}
            with turns.timing_turn():
                times = interleaved(steps, device, args.warmup, args.repeats)
                counts = {k: launches(steps[k], device) for k in steps}
            for k in steps:
                emit('RESULT', model=k, dtype=dtype, mode='eager', times=times[k],
                     eager=times['S' if group == 'pose' else 'OCR-S'], first=firsts[k][0],
                     memory=firsts[k][1], launches=counts[k], shape=built[k][2])
        built = steps = None
        gc.collect()


def job_compiled(args, turns, job):
    """One model in one precision, each compiled mode against its eager step."""
    device, key, dtype = args.device, job['model'], job['dtype']
    amp = None if dtype == 'fp32' else torch.bfloat16
    model, make, shape = train_model(args, key, device)
    for mode in train_modes(args):
        reset_compiled(device)
        options = compile_options(args, mode)
        if TRAIN_MODELS[key][0] == 'pose':
            twin, compiled = model, torch.compile(model, **options)
        else:  # the host's parts, as MMEngine's compile=True now does (CompileAdviceHook)
            from mmhrformer.engine import compile_for_training
            twin, compiled = model, copy.deepcopy(model)
            compile_for_training(compiled, options)
        measure_compiled(args, turns, key, dtype, mode, make(twin, amp), make(compiled, amp),
                         model, shape)
        compiled = None


def job_ddp(args, turns, job):
    """The host model in MMEngine's MMDistributedDataParallel, one process (NCCL; gloo on a
    CPU), its parts compiled as CompileAdviceHook compiles a wrapped model, per broadcast_buffers:
    whether CUDA graphs survive DDP (pytorch#139207: skipped for training-mode BatchNorm under
    DDP, "mutated inputs", more than 10x slower)."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    from mmhrformer.engine import compile_for_training
    device, key = args.device, job['model']
    cuda = device == 'cuda'
    with tempfile.TemporaryDirectory() as tmp:  # a file rendezvous: no port to collide on
        dist.init_process_group('nccl' if cuda else 'gloo', init_method=f'file://{tmp}/pg',
                                rank=0, world_size=1)
        try:
            model, make, shape = train_model(args, key, device)
            mode = train_modes(args)[0]
            compiled = copy.deepcopy(model)
            compile_for_training(compiled, compile_options(args, mode))
            for broadcast in job['broadcast_buffers']:
                wrap = dict(device_ids=[torch.cuda.current_device()] if cuda else None,
                            broadcast_buffers=broadcast)
                eager = MMDistributedDataParallel(module=model, **wrap)
                wrapped = MMDistributedDataParallel(module=compiled, **wrap)
                measure_compiled(args, turns, key, job['dtype'], mode, make(eager, None),
                                 make(wrapped, None), model, shape,
                                 extra=dict(ddp=broadcast))
                eager = wrapped = None  # their reducers go with them
                gc.collect()
        finally:
            dist.destroy_process_group()


def job_runner(args, turns, job):
    """The quickstart config through MMSeg's Runner with ``compile=True`` (what
    CompileAdviceHook makes of it on this device) against the same run eager: seconds per
    iteration after the warm-up, and the CUDA graphs recorded and skipped."""
    from mmhrformer.engine import cudagraph_counts
    iters = args.runner_iters
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for compiled in (False, True):
            emit('PHASE', what=f'Runner compile={compiled}')
            reset_compiled(args.device)
            with turns.timing_turn() if not compiled else contextlib.nullcontext():
                runner, times = runner_run(args, Path(tmp), compiled, iters)
            seconds[compiled] = times
            runner = None
    recorded, skipped = (cudagraph_counts(torch.cuda.current_device())
                         if args.device == 'cuda' else (0, 0))
    warm = args.runner_warmup
    emit('RESULT', model='runner', dtype='fp32', mode='compile=True', times=seconds[True][warm:],
         eager=seconds[False][warm:], first=seconds[True][0], memory=None, launches=None,
         shape=f'{args.runner_batch}x3x{args.runner_hw}x{args.runner_hw}', recorded=recorded,
         skipped=skipped, log=CUDAGRAPH_LOG.lines[:3], iters=iters)


def runner_run(args, work_dir, compiled, iters):
    """Seconds of each iteration of the quickstart config's Runner, compile on or off."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg = quickstart_cfg(work_dir, f'gpu_check_runner_{"compiled" if compiled else "eager"}',
                         iters)
    cfg.train_dataloader.batch_size = args.runner_batch
    size = (args.runner_hw, args.runner_hw)
    cfg.model.data_preprocessor.size = size
    for t in cfg.train_dataloader.dataset.pipeline:  # the tiny set's 64x64 images, scaled up
        if t['type'] == 'RandomResize':
            t['scale'] = size
        elif t['type'] == 'RandomCrop':
            t['crop_size'] = size
    cfg.env_cfg.cudnn_benchmark = True
    cfg.compile = compiled
    times = []

    class IterSeconds(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            sync(args.device)
            self.t0 = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            sync(args.device)
            times.append(time.perf_counter() - self.t0)

    runner = Runner.from_cfg(cfg)
    runner.register_hook(IterSeconds(), priority='VERY_LOW')
    runner.train()
    return runner, times


TRAIN_JOB_FUNCTIONS = dict(eager=job_eager, compiled=job_compiled, ddp=job_ddp,
                           runner=job_runner)
CUDAGRAPH_LOG = CudagraphLog()


def train_child(args):
    """Runs the jobs given as JSON, printing TRAIN_RESULT lines; a broken job prints TRAIN_ERROR
    and the next one runs."""
    logging.getLogger('torch').addHandler(CUDAGRAPH_LOG)
    torch.backends.cudnn.benchmark = True  # as MMSeg's training runtime and the eager sections
    turns = Turns(args)
    for job in json.loads(args.train_child):
        try:
            TRAIN_JOB_FUNCTIONS[job['kind']](args, turns, job)
        except Exception as e:  # noqa: BLE001 - the parent's row says what broke
            traceback.print_exc()
            emit('ERROR', job=job, error=first_line(e))


# -- the parent's side --

def train_cores(args):
    """'timing cores/compiling cores' for the children, or '' where there are too few to split
    (the dry run's 2 cores)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
    if args.device != 'cuda' or len(cores) < 6:
        return ''
    return ','.join(map(str, cores[:2])) + '/' + ','.join(map(str, cores[2:]))


def expected_results(args, job) -> list:
    """(model, dtype, mode, ddp) of each result a job prints, in order."""
    if job['kind'] == 'eager':
        return [(k, d, 'eager', None) for g in ('pose', 'seg') for d in job['dtypes']
                for k, v in TRAIN_MODELS.items() if v[0] == g]
    if job['kind'] == 'compiled':
        return [(job['model'], job['dtype'], m, None) for m in train_modes(args)]
    if job['kind'] == 'ddp':
        return [(job['model'], 'fp32', train_modes(args)[0], b) for b in job['broadcast_buffers']]
    return [('runner', 'fp32', 'compile=True', None)]


class Child:
    """A child process running some of the section's jobs, its output read as it comes."""

    def __init__(self, args, jobs, tmp, env, index):
        self.jobs, self.t0 = jobs, time.perf_counter()
        self.expected = [r for job in jobs for r in expected_results(args, job)]
        self.out, self.err = Path(tmp) / f'child{index}.out', Path(tmp) / f'child{index}.err'
        cmd = [sys.executable, __file__, '--train-child', json.dumps(jobs), '--train-lock',
               str(Path(tmp) / 'timing.lock'), '--train-cores', args.train_cores_arg
               ] + args.child_argv
        with open(self.out, 'w') as out, open(self.err, 'w') as err:
            # its own process group: the Triton compile workers go down with it
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                                         start_new_session=True)
        self.offset, self.phase = 0, 'starting'

    def read(self) -> list:
        """The (kind, payload) lines printed since the last read."""
        with open(self.out) as f:
            f.seek(self.offset)
            text = f.read()
        complete = text[:text.rfind('\n') + 1]
        self.offset += len(complete.encode())
        lines = []
        for line in complete.splitlines():
            kind, _, payload = line.partition(' ')
            if kind in ('TRAIN_RESULT', 'TRAIN_ERROR', 'TRAIN_PHASE'):
                lines.append((kind, json.loads(payload)))
        return lines

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stderr_tail(self) -> str:
        lines = self.err.read_text(errors='replace').strip().splitlines()
        return lines[-1][:200] if lines else 'no output'


def section_train(args, table, ctx):
    """The training step eager / compiled / with CUDA graphs, ours and the references; then the
    goals' reading."""
    budget, results = ctx['budget'], []
    pending = train_jobs(args)
    # The dry run runs all its jobs in one child: one import of the hosts instead of four.
    pending = [pending] if args.quick else [[job] for job in pending]
    env = dict(os.environ)
    args.train_cores_arg = train_cores(args)
    if args.train_cores_arg:
        compiling = len(args.train_cores_arg.split('/')[1].split(','))
        env['TORCHINDUCTOR_COMPILE_THREADS'] = str(max(2, compiling // args.train_jobs))
    start, started = len(table.rows), 0
    running = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            while pending or running:
                while pending and len(running) < args.train_jobs:
                    try:
                        budget.need(table, 'train', job_text(args, pending[0][0]),
                                    seconds=TRAIN_JOB_S[pending[0][0]['kind']])
                    except OutOfBudget as e:
                        table.add('train', 'rest of the section left out', check='skipped',
                                  note=f'{e}; budget {args.budget_s:.0f} s; not started: '
                                  + ', '.join(job_text(args, j) for b in pending for j in b))
                        pending = []
                        break
                    started += 1
                    running.append(Child(args, pending.pop(0), tmp, env, started))
                time.sleep(0.2)
                for child in list(running):
                    done = child.proc.poll() is not None
                    for kind, payload in child.read():
                        if kind == 'TRAIN_PHASE':
                            child.phase = payload['what']
                        elif kind == 'TRAIN_RESULT':
                            results.append(payload)
                            child.expected.remove((payload['model'], payload['dtype'],
                                                   payload['mode'], payload.get('ddp')))
                            train_row(args, table, payload)
                        else:
                            train_missing(args, table, child, 'ERROR', payload['error'],
                                          job=payload['job'])
                    if done:
                        running.remove(child)
                        if child.expected:
                            train_missing(args, table, child, 'ERROR',
                                          f'exit {child.proc.returncode}: {child.stderr_tail()}')
                if running and budget.left() <= 0:
                    for child in running:
                        child.kill()
                        train_missing(args, table, child, 'timeout',
                                      f'cut at the end of the budget ({args.budget_s:.0f} s), '
                                      f'{time.perf_counter() - child.t0:.0f} s after its start, '
                                      f'while {child.phase}')
                    running = []
        finally:
            for child in running:
                child.kill()
    train_goals(args, table, results)
    # measured rows by precision, input group, model and mode (they arrive as children finish),
    # then the goals and what was left out
    rows = sorted(table.rows[start:], key=lambda row: row.get('key') or (1, ))
    for row in rows:
        row.pop('key', None)
    table.rows[start:] = rows
    table.write()


def job_text(args, job) -> str:
    what = {'eager': 'all models eager', 'runner': 'MMSeg Runner compile=True'}.get(job['kind'])
    if what is None:
        what = f'{train_label(args, job["model"])} {job["dtype"]}' + (
            ' DDP' if job['kind'] == 'ddp' else ' compiled')
    return what


def train_missing(args, table, child, check, why, job=None):
    """A row for each result a child will not print (it broke, or it was cut off)."""
    jobs = [job] if job else child.jobs
    gone = [r for j in jobs for r in expected_results(args, j) if r in child.expected]
    for key, dtype, mode, ddp in gone:
        child.expected.remove((key, dtype, mode, ddp))
        table.add('train', f'{row_what(args, key, mode, ddp)}', dtype, check=check, note=why)
        table.rows[-1]['key'] = row_key(key, dtype, mode, ddp)


def row_key(key, dtype, mode, ddp):
    """Where a measured row goes in the section: precision, input group, model, mode."""
    models = list(TRAIN_MODELS) + ['runner']
    modes = ['eager', 'default', 'reduce-overhead', 'compile=True']
    group = TRAIN_MODELS.get(key, ('seg', ))[0]
    return (0, dtype != 'fp32', group == 'seg', models.index(key),
            modes.index(mode) + (0 if ddp is None else 3 + ddp))


def row_what(args, key, mode, ddp) -> str:
    if key == 'runner':
        return 'quickstart OCRNet-HRFormer-T, MMSeg Runner, compile=True (CompileAdviceHook)'
    what = f'{train_label(args, key)} train step, {MODE_LABELS[mode]}'
    if args.compile_backend != 'inductor' and mode != 'eager':
        what += f' backend={args.compile_backend} (dynamo only: the dry run)'
    if ddp is not None:
        what += f', MMDistributedDataParallel (1 process, broadcast_buffers={ddp})'
    return what


def cudagraph_cell(r, device) -> tuple:
    """(check, note) of the CUDA graphs: replayed or not, and the launches a step."""
    counts = r.get('launches')
    if device != 'cuda':
        return '', 'CUDA graphs n/a (no CUDA)'
    if not counts or 'error' in counts:
        return '', f'launches unknown ({(counts or {}).get("error", "not profiled")})'
    text = f'{counts["kernels"]} kernel + {counts["graphs"]} CUDA graph launches a step'
    if r['mode'] in ('reduce-overhead', 'compile=True') or r.get('ddp') is not None:
        replayed = counts['graphs'] > 0
        check = 'CUDA graphs replayed' if replayed else 'CUDA graphs NOT replayed'
        why = f'; {r["recorded"]} recorded, {r["skipped"]} skipped' + (
            f' ({"; ".join(r["log"])})' if r.get('log') else '')
        return check, text + why
    return '', text


def train_row(args, table, r):
    """The row of one result: its time, against the same model eager (same process)."""
    mode, device = r['mode'], args.device
    if r['model'] == 'runner':
        check = ('CUDA graphs replayed' if r['recorded'] else 'CUDA graphs NOT replayed'
                 ) if device == 'cuda' else ''
        note = (f'{r["recorded"]} CUDA graphs recorded, {r["skipped"]} skipped' + (
            f' ({"; ".join(r["log"])})' if r.get('log') else '') if device == 'cuda'
            else 'CUDA graphs n/a (no CUDA): compile=True trains eager on a CPU')
    else:
        check, note = cudagraph_cell(r, device)
    timing = timed_row({'eager': r['eager'], 'this': r['times']}, 'eager', 'this')
    compiled = mode != 'eager' or r['model'] == 'runner'
    first = (f'compile (first call) {r["first"]:.0f} s' if compiled
             else f'first call {r["first"]:.1f} s')
    memory = '' if r.get('memory') is None else f'; peak {gib(r["memory"])}'
    graphs = (f'; {r["frames"]} frame(s), {r["graphs"]} graph(s), {r["breaks"]} graph break(s)'
              if 'frames' in r else '')
    ours = 'S' if TRAIN_MODELS.get(r['model'], ('seg', ))[0] == 'pose' else 'OCR-S'
    if r['model'] == 'runner':
        cells = (f'same Runner, compile=False, {len(r["eager"])} iterations after warm-up',
                 ms(timing[0]), ms(timing[1]), ratio_cell(timing))
    elif compiled:  # the model against itself eager: what compiling gains
        cells = ('same model, eager' + (' DDP' if r.get('ddp') is not None else ''),
                 ms(timing[0]), ms(timing[1]), ratio_cell(timing))
    elif r['model'] == ours:
        cells = ('', '', ms(timing[1]), '')
    else:  # a reference eager against ours eager, interleaved in one process
        cells = (f'{train_label(args, r["model"])} eager', ms(timing[1]),
                 f'{ms(timing[0])} ({train_label(args, ours)} eager)',
                 ratio_cell(timed_row({'ref': r['times'], 'ours': r['eager']}, 'ref')))
    table.add('train', row_what(args, r['model'], mode, r.get('ddp')),
              f'{r["shape"]} {r["dtype"]}', *cells, check,
              note=f'{first}{memory}; {note}{graphs}')
    table.rows[-1]['key'] = row_key(r['model'], r['dtype'], mode, r.get('ddp'))


def train_goals(args, table, results):
    """One row per goal of issue #29: met or not, on the fp32 one-process rows."""
    import statistics as st
    if not results:  # nothing ran (the budget): the skipped row says it all
        return
    medians = {}
    for r in results:
        if r['dtype'] == 'fp32' and r.get('ddp') is None and r['model'] != 'runner':
            medians[(r['model'], r['mode'])] = (st.median(r['times']), r)
    for ref, ours, modes, goal in TRAIN_GOALS:
        def pick(key):
            found = [(t, m) for (k, m), (t, _) in medians.items() if k == key
                     and (modes == 'fastest' or m == 'eager')]
            return min(found) if found else None
        a, b = pick(ref), pick(ours)
        what = (f'goal: {train_label(args, ours)} train step >= {goal}x '
                f'{train_label(args, ref)}, ' + ('each in its fastest mode' if modes == 'fastest'
                                                 else 'both eager'))
        if a is None or b is None:
            table.add('train', what, 'fp32', check='n/a', note='a side was not measured')
            continue
        ratio = a[0] / b[0]
        if modes == 'eager':  # interleaved in one process: the spread too
            r = medians[(ref, 'eager')][1]
            ratio_text = ratio_cell(timed_row({'ref': r['times'],
                                               'ours': medians[(ours, 'eager')][1]['times']},
                                              'ref'))
        else:
            ratio_text = f'{ratio:.2f}x'
        shape = medians[(ours, b[1])][1]['shape']
        table.add('train', what, f'{shape} fp32', f'{train_label(args, ref)}, {MODE_LABELS[a[1]]}',
                  ms(a[0]), f'{ms(b[0])} ({MODE_LABELS[b[1]]})', ratio_text,
                  'met' if ratio >= goal else 'not met',
                  note=f'goal {goal}x, set for the H200; measured on {table.meta["device name"]}'
                  + ('' if modes == 'eager' else '; medians of separate processes'))

# ---- main ----------------------------------------------------------------------------------

SECTION_FUNCTIONS = dict(train=section_train, env=section_env, correct=section_correct,
                         amp=section_amp, backbone=section_backbone, ocrnet=section_ocrnet,
                         profile=section_profile, compile=section_compile)


def parse_args(argv=None):
    """The command line, with the shapes and counts of a full or a quick run filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'],
                        help='where to check (default cuda; the CPU is always the reference)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny shapes, one repeat, HRFormer-T: a dry run on any machine')
    parser.add_argument('--out', type=Path, default=ROOT / 'work_dirs' / 'gpu_check',
                        help='folder for gpu_check.md, gpu_check.json and profile.txt')
    parser.add_argument('--skip', nargs='*', default=[], choices=SECTIONS, metavar='SECTION',
                        help=f'sections to leave out, of: {", ".join(SECTIONS)}')
    parser.add_argument('--budget-s', type=float, default=330,
                        help='wall seconds for the whole run; rows that would not fit are left '
                        'out (default 330; run.sh passes what is left of its 450 s)')
    parser.add_argument('--repeats', type=int, help='timed repeats (default 5, quick 1)')
    parser.add_argument('--warmup', type=int, help='warm-up calls (default 2, quick 0)')
    parser.add_argument('--train-groups', nargs='*', default=list(TRAIN_GROUPS),
                        choices=TRAIN_GROUPS, metavar='GROUP',
                        help='rows of the train section: fp32 (eager and compiled), amp (bf16), '
                        'ddp (one-process DDP), runner (MMSeg Runner compile=True); default all')
    parser.add_argument('--train-jobs', type=int, default=4,
                        help='train section: child processes compiling at once (default 4)')
    parser.add_argument('--compile-child', help=argparse.SUPPRESS)
    parser.add_argument('--train-child', help=argparse.SUPPRESS)
    parser.add_argument('--train-lock', help=argparse.SUPPRESS)
    parser.add_argument('--train-cores', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('gpu_check.py: --device cuda asked, but torch sees no CUDA device '
              '(use --device cpu --quick for a dry run)', file=sys.stderr)
        sys.exit(2)
    if (args.repeats is not None and args.repeats < 1 or args.warmup is not None
            and args.warmup < 0 or args.train_jobs < 1):
        print('gpu_check.py: --repeats and --train-jobs must be at least 1, --warmup at least 0',
              file=sys.stderr)
        sys.exit(2)
    quick = args.quick
    args.child_argv = ['--device', args.device, '--out', str(args.out)] + (
        ['--quick'] if quick else []) + [f'--repeats={args.repeats}'] * (args.repeats is not None) \
        + [f'--warmup={args.warmup}'] * (args.warmup is not None)
    # 5 and 2, not 10 and 3 (the first H200 run): the lease is 15 minutes in all; the timed
    # calls were about half of the backbone section's 15 s a row (setup and cuDNN's autotuning
    # the rest), and the per-repeat ratios of 10 repeats spread wide anyway (0.38-1.40)
    args.repeats = args.repeats or (1 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 2)
    args.seg_repeats = args.repeats if quick else max(3, args.repeats // 2)
    args.archs = ['tiny'] if quick else ['small', 'base']
    args.seg_archs = ['S'] if quick else ['S', 'B']  # B's rows run the same code as S's
    # A CPU has no fast fp16 convolutions (reference kernels, minutes a step): fp16 on CUDA only.
    args.dtypes = (None, torch.bfloat16) + ((torch.float16, ) if args.device == 'cuda' else ())
    args.pose_hw = (64, 64) if quick else (256, 192)  # HRNet needs multiples of 32
    args.pose_batch = 1 if quick else 32
    args.correct_batch = 1 if quick else 2
    # under OHEM's min_kept (100000 pixels) a batch keeps every pixel: no threshold to flip
    args.seg_correct_hw = (64, 64) if quick else (128, 256)
    args.cls_hw = (64, 64) if quick else (224, 224)
    args.seg_train_hw = (64, 128) if quick else (512, 1024)
    args.seg_infer_hw = (64, 128) if quick else (1024, 2048)
    args.ffn_batch, args.ffn_hw = (2, (9, 11)) if quick else (32, (64, 48))
    args.sdpa_windows = 4 if quick else 32 * 70  # S's first branch at 32x3x256x192: 10x7 windows
    args.amp_iters = 2 if quick else 20
    args.matmul_size = 256 if quick else 8192
    args.profile_top = 8
    # Inductor on a CPU compiles for minutes: the dry run checks the plumbing with dynamo alone.
    args.compile_backend = 'eager' if quick and args.device == 'cpu' else 'inductor'
    # the Runner row: the quickstart config at a size where a GPU step is launch-bound
    args.runner_hw, args.runner_batch = (64, 2) if quick else (512, 8)
    args.runner_iters, args.runner_warmup = (3, 1) if quick else (30, 10)
    return args


def main(argv=None):
    """Runs the sections in order; returns the exit status (0 all passed, 1 a check failed)."""
    args = parse_args(argv)
    torch.manual_seed(0)
    if args.quick and args.device == 'cpu':
        # On a shared 2-core machine OpenMP's threads wait for each other: a HRFormer-T training
        # step took 11 s with 2 threads and 0.8 s with 1 while other jobs ran.
        torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel('ERROR')
    if args.compile_child:
        return compile_child(args)
    if args.train_child:
        return train_child(args)

    import mmdet
    import mmengine
    import mmpose
    import mmpretrain
    import mmseg
    cuda = args.device == 'cuda'
    meta = {
        'device name': torch.cuda.get_device_name() if cuda else
        f'CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads',
        'torch': f'{torch.__version__} (CUDA {torch.version.cuda}, cuDNN '
                 f'{torch.backends.cudnn.version()})',
        'hosts': f'mmengine {mmengine.__version__}, mmseg {mmseg.__version__}, mmpose '
                 f'{mmpose.__version__}, mmdet {mmdet.__version__}, mmpretrain '
                 f'{mmpretrain.__version__}; Python {platform.python_version()}',
        'run': f'{"quick (dry run) " if args.quick else ""}{args.warmup} warm-up, medians of '
               f'{args.repeats} interleaved repeats ({args.seg_repeats} for OCRNet); ratio = '
               'reference / mmhrformer (> 1: ours faster or lighter), spread = lowest-highest '
               'per-repeat ratio; fp32 speed rows use PyTorch\'s defaults (cuDNN may use TF32 '
               'for convolutions, matmuls do not), with cuDNN\'s benchmark mode on',
        'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
    }
    table = Table(args.out, meta)
    budget = Budget(args.budget_s, enabled=not args.quick)  # the dry run checks the plumbing
    ctx = {'budget': budget}
    with budget.alarm():
        for name in SECTIONS:
            if name in args.skip:
                continue
            t0 = table.last = time.perf_counter()
            # Autotuned cuDNN algorithms for the timed sections, as MMSeg's training runtime has
            # them (env_cfg cudnn_benchmark=True); the warm-up calls pay for the tuning.
            torch.backends.cudnn.benchmark = name in ('backbone', 'ocrnet', 'profile')
            try:
                budget.armed = True
                SECTION_FUNCTIONS[name](args, table, ctx)
                budget.armed = False
            except OutOfBudget as e:  # the next section may still fit
                budget.armed = False
                table.add(name, 'rest of the section left out', check='skipped',
                          note=f'{e}; budget {args.budget_s:.0f} s')
            except Exception as e:  # one broken section must not cost the others' results
                budget.armed = False
                traceback.print_exc()
                table.add(name, 'section broke', check='ERROR',
                          note=f'{type(e).__name__}: {e}'[:300])
            table.meta[f'section {name} s'] = round(time.perf_counter() - t0, 1)
            if cuda:
                torch.cuda.empty_cache()
    table.write()
    print('\n' + table.markdown())
    failed = table.failed()
    for r in failed:
        print(f'{r["check"]}: [{r["section"]}] {r["what"]} {r["setting"]}: {r["note"]}')
    print(f'{len(table.rows)} rows, {len(failed)} failed checks or broken sections; written to '
          f'{args.out}/gpu_check.md and .json')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
