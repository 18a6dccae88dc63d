"""What several test files use, built once per session (and by one xdist worker: every test using
a fixture of this module is put in one group, tests/conftest.py).

``shipped_config``: a config file as ``Config.fromfile`` loads it, loaded once per process. A config
with a host base (``mmseg::``, ``mmpose::``, ``mmpretrain::``) makes MMEngine read every metafile
of the host's model index, seconds per load, and the config tests read each shipped config in
several tests.

``quickstart``: the README's first command, shortened (tools/quickstart.py trains OCRNet-HRFormer-T
and TopDown HRFormer-T on the shipped tiny data), whose checkpoints the hosts' test tools,
inferencers and the demo then load (tests/test_quickstart.py, tests/test_workflow.py)."""
import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Half the README run's iterations (200 each): 66.9 mIoU and 0.79 AP when this was written, against
# about 20 mIoU for all-background and about 0 AP for keypoints that ignore the image (after 10
# iterations: 5 mIoU, 0 AP).
QUICKSTART_ITERS = 100


def run(cmd, **kwargs):
    """A command as users run it from the clone, with torch's safe loading on."""
    env = dict(os.environ, OMP_WAIT_POLICY='PASSIVE', PYTHONUNBUFFERED='1', **kwargs.pop('env', {}))
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope='session')
def quickstart(tmp_path_factory):
    """(the finished process, its work folder, its summary.json)."""
    work = tmp_path_factory.mktemp('quickstart')
    proc = run([sys.executable, ROOT / 'tools' / 'quickstart.py', '--iters', QUICKSTART_ITERS,
                '--check', '--work-dir', work], timeout=600)
    assert (work / 'summary.json').exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc, work, json.loads((work / 'summary.json').read_text())


@functools.lru_cache(maxsize=None)
def _loaded_config(path: str):
    from mmengine.config import Config
    return Config.fromfile(path)


def shipped_config(path):
    """``Config.fromfile(path)``, a copy that the test may change."""
    return copy.deepcopy(_loaded_config(str(path)))
