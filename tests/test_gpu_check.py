"""The GPU check's dry run (``benchmarks/gpu_check.py --device cpu --quick``) goes through every
section on the CPU, with the hosts' real models and Runner, and its correctness checks pass; bad
arguments get one line and exit status 2. Timings are never asserted.

The dry run has a ``transformers`` on its path that MMPretrain 1.2 cannot import
(tests/data/incompatible_transformers), as the GPU machine had one (5.17), which broke the
MMPretrain row there: the check must hide it. gpu_check.py is only ever imported in a child
process: importing it hides ``transformers`` from the whole process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks/gpu_check.py'
FAKE_TRANSFORMERS = ROOT / 'tests/data/incompatible_transformers'


def with_fake_transformers() -> dict:
    """The environment with the incompatible ``transformers`` first on PYTHONPATH."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(FAKE_TRANSFORMERS)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    return env


def python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a child Python (one thread), the incompatible ``transformers`` on its path."""
    return subprocess.run([sys.executable, '-c', 'import torch; torch.set_num_threads(1)\n' + code],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=with_fake_transformers())


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--quick', '--out',
                           str(out)], capture_output=True, text=True, timeout=600,
                          env=with_fake_transformers())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((out / 'gpu_check.json').read_text()), out


def rows_of(result, section):
    return [r for r in result['rows'] if r['section'] == section]


@pytest.mark.slow
def test_dry_run_has_every_section_and_passes(dry_run):
    stdout, result, out = dry_run
    rows = result['rows']
    # Nothing skipped, timed out or broken: every check passed, is a measurement or a goal's
    # verdict.
    assert {r['check'] for r in rows} <= {'pass', '', 'met', 'not met'}, [
        r for r in rows if r['check'] not in ('pass', '', 'met', 'not met')]
    assert [r['section'] for r in rows][0] == 'train'  # issue #29: it runs first
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
    # S only in the dry run (B's rows run the same code); AMP (fp16) on CUDA only
    assert [(r['what'].split(' ')[0], r['what'].split(' ')[1], r['setting'].split(' ')[-1])
            for r in ocrnet] == [('OCRNet-HRFormer-S', 'train', 'fp32'),
                                 ('OCRNet-HRFormer-S', 'inference', 'fp32')]
    assert all(r['reference'] == 'OCRNet-HRNetV2p-W48 (MMSeg)' for r in ocrnet)
    # the published V100 figures beside ours (memory rows too, on CUDA)
    assert '2.24 fps' in ocrnet[-1]['published (V100)']

    train = rows_of(result, 'train')
    measured = [r for r in train if not r['what'].startswith('goal: ')]
    # every model eager (ours and the references interleaved per input), ours compiled in
    # one-process DDP with each broadcast_buffers, the Runner with compile=True
    assert [r['what'].split(' train step')[0].split(', MMSeg Runner')[0] for r in measured] == [
        'HRFormer micro', 'MMPose HRFormer-T', 'MMPose HRNet-W32', 'OCRNet-HRFormer micro',
        'OCRNet-HRFormer micro', 'OCRNet-HRFormer micro', 'MMSeg OCRNet-HRNetV2p-W18-Small',
        'quickstart OCRNet-HRFormer-T'], measured
    ddp = [r for r in measured if 'MMDistributedDataParallel' in r['what']]
    assert ['broadcast_buffers=False' in ddp[0]['what'], 'broadcast_buffers=True' in
            ddp[1]['what']] == [True, True], ddp
    assert all('frame(s)' in r['note'] and r['reference'] == 'same model, eager DDP'
               for r in ddp), ddp
    # the CUDA graph cells say why they are empty, every time is a time
    assert all('CUDA graphs n/a (no CUDA)' in r['note'] for r in measured), measured
    assert all(r['mmhrformer value'].split(' ')[1] == 'ms' for r in measured), measured
    goals = [r for r in train if r['what'].startswith('goal: ')]
    assert len(goals) == 4 and all(r['check'] in ('met', 'not met') for r in goals), goals
    assert all('set for the H200' in r['note'] for r in goals), goals

    assert len(rows_of(result, 'profile')) == 8
    assert len(rows_of(result, 'compile')) == 1
    assert (out / 'gpu_check.md').read_text().count('\n|') == len(rows) + 2  # header, rule, rows
    assert (out / 'profile.txt').exists()
    assert stdout.rstrip().endswith('.json')  # the table is the last thing printed


def test_bad_arguments_one_line_exit_2(tmp_path):
    bad = [['--repeats', '0'], ['--train-jobs', '0']]
    if not torch.cuda.is_available():
        bad.append(['--device', 'cuda'])
    for args in bad:
        proc = subprocess.run([sys.executable, str(SCRIPT), '--out', str(tmp_path)] + args,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith('gpu_check.py: '), proc.stderr


def test_incompatible_transformers_breaks_mmpretrain_unless_hidden():
    # The stand-in reproduces the GPU machine's failure: MMPretrain's model registry does not
    # import...
    proc = python('import mmpretrain.models')
    assert proc.returncode != 0 and 'transformers' in proc.stderr, proc.stderr[-2000:]
    # ...and imports, without its multimodal models, once gpu_check.py has hidden transformers.
    proc = python('import sys; sys.path.insert(0, "benchmarks"); import gpu_check\n'
                  'import mmpretrain.models\n'
                  'from mmpretrain.utils.dependency import WITH_MULTIMODAL\n'
                  'print("multimodal", WITH_MULTIMODAL)')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ['multimodal', 'False'], proc.stdout


GRAD_VERDICT_CASES = '''
import sys; sys.path.insert(0, "benchmarks"); import gpu_check
g = torch.Generator().manual_seed(0)
ref = {n: torch.randn(50, generator=g, dtype=torch.float64) for n in 'abc'}
ref['bias'] = torch.zeros(8, dtype=torch.float64)  # zero up to rounding, as a bias before a BN
kinds = dict(a='Conv2d.weight', b='Conv2d.weight', c='WindowMSA.table', bias='Conv2d.bias')

def noisy(scale, **override):  # float32-like errors of relative size scale, per kind overridable
    out = {}
    for n, v in ref.items():
        s = override.get(n, scale)
        out[n] = v + s * (v.norm() / v.numel() ** 0.5 + 1e-6) * torch.randn(
            v.shape, generator=g, dtype=torch.float64)
    return out

cpu = noisy(5e-3)
cases = dict(
    same=noisy(5e-3),                   # a second float32 order: pass
    better=noisy(1e-4),                 # CUDA closer to float64 than the CPU: pass
    three_times=noisy(1.5e-2),          # within the factor: pass
    worse=noisy(1e-1),                  # 20x the CPU's error everywhere: FAIL
    one_kind=noisy(5e-3, c=1.0),        # one small kind wrong (0 % of the norm): FAIL
    bias_noise=noisy(5e-3, bias=2e-2),  # rounding noise on a zero gradient: pass
    nan=dict(noisy(5e-3), a=torch.full((50,), float('nan'), dtype=torch.float64)),
)
for name, dev in cases.items():
    check, e_dev, e_cpu, text = gpu_check.grad_verdict(dev, cpu, ref, kinds)
    print(name, check, text.replace(' ', '_'))
'''


def test_gradients_pass_within_a_factor_of_the_cpu_float32_error():
    proc = python(GRAD_VERDICT_CASES)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}
    assert {k: v[0] for k, v in got.items()} == dict(
        same='pass', better='pass', three_times='pass', worse='FAIL', one_kind='FAIL',
        bias_noise='pass', nan='FAIL'), proc.stdout
    assert 'WindowMSA.table' in got['one_kind'][1], got  # the row names the failing kind


def test_rows_that_do_not_fit_the_budget_are_left_out(tmp_path):
    # No budget at all: every section ends at its first row with one 'skipped' row saying why,
    # and that is no failure.
    proc = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--budget-s', '0',
                           '--out', str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=with_fake_transformers())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads((tmp_path / 'gpu_check.json').read_text())['rows']
    assert [r['section'] for r in rows] == ['train', 'env', 'correct', 'amp', 'backbone', 'ocrnet',
                                            'profile', 'compile'], rows
    assert all(r['check'] == 'skipped' and 'of the budget left' in r['note'] for r in rows), rows


BUDGET_CASES = '''
import sys, time; sys.path.insert(0, "benchmarks"); import gpu_check
from pathlib import Path
table = gpu_check.Table(Path(sys.argv[1]), {'device name': 'test'})
budget = gpu_check.Budget(time.perf_counter() - gpu_check.START + 100, enabled=True)
budget.need(table, 'backbone', 'first row')  # 100 s left, 30 s expected
table.add('backbone', 'a row'); table.rows[-1]['s'] = 150.0  # as if it had taken 150 s
try:
    budget.need(table, 'backbone', 'second row')
    print('second row fits')
except gpu_check.OutOfBudget as e:
    print('second row left out:', e)
budget.need(table, 'profile', 'another section')  # its own estimate: 25 s
# the backstop: a row still running at the end of the budget (plus the grace) is cut off
gpu_check.GRACE_S = 0
budget = gpu_check.Budget(time.perf_counter() - gpu_check.START + 0.5, enabled=True)
with budget.alarm():
    budget.armed = True
    try:
        while True:
            pass
    except gpu_check.OutOfBudget as e:
        print('cut off:', e)
'''


def test_budget_is_checked_before_each_row(tmp_path):
    proc = python(BUDGET_CASES.replace('sys.argv[1]', repr(str(tmp_path))))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[-2].startswith('second row left out: second row: ') and lines[-2].endswith(
        ' s of the budget left, about 150 s needed'), lines
    assert lines[-1].startswith('cut off: cut off mid-row'), lines


TRAIN_CUT_CASE = '''
import sys, time; sys.path.insert(0, "benchmarks"); import gpu_check
from pathlib import Path
args = gpu_check.parse_args(['--device', 'cpu', '--quick', '--train-groups', 'runner', '--out',
                             sys.argv[1]])
table = gpu_check.Table(Path(sys.argv[1]), {'device name': 'test'})
gpu_check.TRAIN_JOB_S['runner'] = 1  # start it with 4 s left: it cannot finish in them
budget = gpu_check.Budget(time.perf_counter() - gpu_check.START + 4, enabled=True)
gpu_check.section_train(args, table, {'budget': budget})
for r in table.rows:
    print('ROW', r['check'], '|', r['what'], '|', r['note'])
'''


def test_train_jobs_are_cut_at_the_end_of_the_budget(tmp_path):
    # A child still running when the budget ends is killed (with its process group) and its
    # rows say so, instead of the section waiting for it.
    proc = python(TRAIN_CUT_CASE.replace('sys.argv[1]', repr(str(tmp_path))))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split(' ', 1)[1].split(' | ') for line in proc.stdout.splitlines()
            if line.startswith('ROW ')]
    assert [r[0] for r in rows] == ['timeout'], rows
    assert 'MMSeg Runner, compile=True' in rows[0][1], rows
    assert rows[0][2].startswith('cut at the end of the budget'), rows
