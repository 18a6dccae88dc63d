"""The benchmark scripts run end to end (a smoke run: HRFormer-T, one repeat) and their tables hold
what README quotes; the timings themselves are not tested."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_backbone_speed_smoke():
    out = subprocess.run(
        [sys.executable, str(ROOT / 'benchmarks/backbone_speed.py'), '--arch', 'tiny', '--quick',
         '--repeats', '1', '--warmup', '0', '--pose-batch', '1'],
        capture_output=True, text=True, timeout=600, check=True).stdout
    rows = [line.split(' | ') for line in out.splitlines() if line.startswith('| tiny')]
    measures = [(r[1], r[3]) for r in rows]
    assert measures == [
        ('inference 1x3x256x192', 'MMPose HRFormer'),
        ('train step 1x3x256x192', 'MMPose HRFormer'),
        ('activation memory 1x3x256x192', 'MMPose HRFormer'),
        ('inference 1x3x256x192', 'MMPose HRNet-W32'),
        ('train step 1x3x256x192', 'MMPose HRNet-W32'),
    ], out
    # Same weights, same outputs: the difference is float32 rounding of the largest output.
    diff, scale = map(float, re.search(r'([\d.e+-]+) \(of \|out\| <= (\d+)\)', rows[0][8]).groups())
    assert diff <= 1e-5 * scale, rows[0]
    for r in rows:
        assert re.fullmatch(r'\d+\.\d\dx', r[6]), r  # a ratio on every row
