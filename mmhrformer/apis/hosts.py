"""Which host (MMSeg, MMPose, MMPretrain) a config is for: the one its ``default_scope`` names."""
from pathlib import Path

from ..registry import HOSTS


class HostError(RuntimeError):
    """A config, host or host tool that cannot be used; the message says why."""


def host_of(config: str) -> str:
    """The host (``mmseg``, ``mmpose``, ``mmpretrain``) whose runner a config is for.

    Raises:
        HostError: The file is missing or its ``default_scope`` names no host of this package.
    """
    from mmengine.config import Config
    if not Path(config).is_file():
        raise HostError(f'{config}: no such config file')
    scope = Config.fromfile(config).get('default_scope')
    if scope not in HOSTS:
        raise HostError(f'{config}: default_scope {scope!r} names no host of this package '
                        f'(one of {", ".join(HOSTS)})')
    return scope
