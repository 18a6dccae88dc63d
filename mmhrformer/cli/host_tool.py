"""Hands a config to the train / test tool of the host its ``default_scope`` names.

``mim train mmhrformer CONFIG`` runs ``<installed mmhrformer>/.mim/tools/train.py CONFIG ...``.
The configs of this package belong to MMSeg, MMPose or MMPretrain, whose own ``tools/train.py`` and
``tools/test.py`` (shipped in their ``.mim`` folders) know their runners and options: this finds the
host's script and runs it in this process, as if it had been called directly, with the same
arguments. ``test`` first checks the checkpoint against the config's model (one line and exit
status 2 for a file of another task, arch or data set).
"""
import argparse
import importlib
import runpy
import sys
from pathlib import Path
from typing import List, Optional

from ..apis import HostError, host_of
from ..checkpoint import CheckpointError, check_against_config

TOOLS = ('train', 'test')


def host_script(host: str, tool: str) -> Path:
    """The host's own ``tools/<tool>.py``: in its installed ``.mim`` folder, or beside its
    package in a clone of the host."""
    try:
        root = Path(importlib.import_module(host).__file__).resolve().parent
    except ModuleNotFoundError:
        raise HostError(f'{host} is not installed; the config needs it') from None
    for script in (root / '.mim' / 'tools' / f'{tool}.py', root.parent / 'tools' / f'{tool}.py'):
        if script.is_file():
            return script
    raise HostError(f'{host} is installed without its tools/{tool}.py (looked in '
                    f'{root / ".mim" / "tools"} and {root.parent / "tools"})')


def cfg_options(argv: List[str]) -> Optional[dict]:
    """The ``--cfg-options`` among a host tool's arguments, parsed as the hosts parse them."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    try:
        return parser.parse_known_args(argv)[0].cfg_options
    except (SystemExit, ValueError):  # malformed: the host's own parser says so
        return None


def run(tool: str, argv: Optional[List[str]] = None) -> None:
    """Runs the host's ``tools/<tool>.py`` with ``argv`` (default: this process's arguments)."""
    assert tool in TOOLS, tool
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = (f'usage: {tool}.py CONFIG [options of the host\'s tools/{tool}.py]\n'
             f'Runs MMSeg\'s, MMPose\'s or MMPretrain\'s tools/{tool}.py, whichever the '
             "config's default_scope names; `CONFIG -h` shows that tool's options.")
    if argv[:1] in (['-h'], ['--help']):  # mim asks this before running the tool
        print(usage)
        return
    if not argv or argv[0].startswith('-'):
        print(usage, file=sys.stderr)
        sys.exit(2)
    try:
        script = host_script(host_of(argv[0]), tool)
        if tool == 'test' and len(argv) > 1 and not argv[1].startswith('-'):
            # The hosts' test tools load non-strictly and would score a random head, or the
            # right weights with settings they were not trained with.
            check_against_config(argv[0], argv[1], cfg_options(argv[2:]))
    except (HostError, CheckpointError) as err:
        print(f'{tool}.py: error: {err}', file=sys.stderr)
        sys.exit(2)
    sys.argv = [str(script), *argv]
    runpy.run_path(str(script), run_name='__main__')
