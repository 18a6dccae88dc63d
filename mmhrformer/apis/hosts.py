"""Which host (MMSeg, MMPose, MMPretrain) a config is for: the one its ``default_scope`` names."""
from pathlib import Path

from ..registry import HOSTS


class HostError(RuntimeError):
    """A config, host or host tool that cannot be used; the message says why."""


def host_of(config: str) -> str:
    """The host (``mmseg``, ``mmpose``, ``mmpretrain``) whose runner a config is for.

    Raises:
        HostError: The file is missing, does not load (a syntax error, a missing base), or its
            ``default_scope`` names no host of this package.
    """
    from mmengine.config import Config
    if not Path(config).is_file():
        raise HostError(f'{config}: no such config file')
    try:
        scope = Config.fromfile(config).get('default_scope')
    except Exception as err:  # noqa: BLE001 - a config is Python: it fails in every way
        # A syntax error names its file and line last.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or ['']
        raise HostError(f'{config}: not a config that loads ({type(err).__name__}: '
                        f'{lines[-1][:200]})') from None
    if scope not in HOSTS:
        raise HostError(f'{config}: default_scope {scope!r} names no host of this package '
                        f'(one of {", ".join(HOSTS)})')
    return scope
