"""The GPU check's dry run (``benchmarks/gpu_check.py --device cpu --quick``) goes through every
section on the CPU, with the hosts' real models and Runner, and its correctness checks pass; bad
arguments get one line and exit status 2. Timings are never asserted."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks/gpu_check.py'


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--quick', '--out',
                           str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((out / 'gpu_check.json').read_text()), out


def rows_of(result, section):
    return [r for r in result['rows'] if r['section'] == section]


@pytest.mark.slow
def test_dry_run_has_every_section_and_passes(dry_run):
    stdout, result, out = dry_run
    rows = result['rows']
    # Nothing skipped, timed out or broken: every check passed or is a measurement.
    assert {r['check'] for r in rows} <= {'pass', ''}, [r for r in rows if r['check'] not in
                                                         ('pass', '')]
    whats = [r['what'] for r in rows]
    assert [r['setting'] for r in rows_of(result, 'env')] == ['fp32 (TF32 off)', 'bf16', 'fp16']

    correct = rows_of(result, 'correct')
    checked = [r for r in correct if r['check'] == 'pass']
    assert len(checked) == 1 + 3 + 6, whats  # backbone, three hosts, FFN chain 2 widths x 3 dtypes
    for host in ('MMSeg OCRNet', 'MMPose TopdownPoseEstimator', 'MMPretrain ImageClassifier'):
        assert any(w.startswith(host) for w in whats), host
    sdpa = [r for r in correct if r['what'].startswith('SDPA backends')]
    assert len(sdpa) == 8 and all('math' in r['mmhrformer value'] for r in sdpa), sdpa

    amp = rows_of(result, 'amp')
    assert [r['setting'] for r in amp] == ['fp32', 'AMP fp16', 'AMP bf16']
    assert all(r['check'] == 'pass' for r in amp), amp

    backbone = rows_of(result, 'backbone')
    assert sum('inference' in r['what'] for r in backbone) == 4  # fp32, bf16 x 2 references
    assert sum('train step' in r['what'] for r in backbone) == 4
    assert all(r['ratio (spread)'].endswith(')') for r in backbone[1:]), backbone

    ocrnet = rows_of(result, 'ocrnet')
    assert [(r['what'].split(' ')[0], r['setting'].split(' ')[-1]) for r in ocrnet] == [
        ('OCRNet-HRFormer-S', 'fp32'), ('OCRNet-HRFormer-B', 'fp32'),
        ('OCRNet-HRFormer-S', 'bf16'), ('OCRNet-HRFormer-B', 'bf16'),  # fp16 on CUDA
        ('OCRNet-HRFormer-S', 'fp32'), ('OCRNet-HRFormer-B', 'fp32')]
    assert all(r['reference'] == 'OCRNet-HRNetV2p-W48 (MMSeg)' for r in ocrnet)
    # the published V100 figures beside ours (memory rows too, on CUDA)
    assert '2.24 fps' in ocrnet[-2]['published (V100)'] and '1.15 fps' in ocrnet[-1][
        'published (V100)']

    assert len(rows_of(result, 'profile')) == 8
    assert len(rows_of(result, 'compile')) == 1
    assert (out / 'gpu_check.md').read_text().count('\n|') == len(rows) + 2  # header, rule, rows
    assert (out / 'profile.txt').exists()
    assert stdout.rstrip().endswith('.json')  # the table is the last thing printed


def test_bad_arguments_one_line_exit_2(tmp_path):
    bad = [['--repeats', '0']]
    if not torch.cuda.is_available():
        bad.append(['--device', 'cuda'])
    for args in bad:
        proc = subprocess.run([sys.executable, str(SCRIPT), '--out', str(tmp_path)] + args,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith('gpu_check.py: '), proc.stderr
