"""Test with the runner of the host a config names (MMSeg, MMPose or MMPretrain).

    python tools/test.py CONFIG [options of the host's tools/test.py]

What ``mim test mmhrformer CONFIG`` runs (this file ships in the package's ``.mim/tools``): the
config's ``default_scope`` picks the host, whose own tools/test.py then runs with these arguments.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone without installing

from mmhrformer.cli.host_tool import run  # noqa: E402

if __name__ == '__main__':
    run('test')
