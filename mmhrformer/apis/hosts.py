"""Configs as the commands load them (one-line errors, ``--cfg-options``), and which host (MMSeg,
MMPose, MMPretrain) a config is for: the one its ``default_scope`` names."""
from pathlib import Path
from typing import Optional

from ..registry import HOSTS


class HostError(RuntimeError):
    """A config, host or host tool that cannot be used; the message says why."""


def load_config(config: str, cfg_options: Optional[dict] = None):
    """The config at ``config`` with ``cfg_options`` (``--cfg-options``) merged in.

    Raises:
        HostError: One line: the file is missing, does not load (a syntax error, a missing base),
            or an option does not merge.
    """
    from mmengine.config import Config
    if not Path(config).is_file():
        raise HostError(f'{config}: no such config file')
    try:
        cfg = Config.fromfile(config)
    except Exception as err:  # noqa: BLE001 - a config is Python: it fails in every way
        raise HostError(f'{config}: not a config that loads ({type(err).__name__}: '
                        f'{first_line(err, last=True)})') from None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as err:  # noqa: BLE001 - a key may run into any value
            raise HostError(f'--cfg-options: {first_line(err)}') from None
    return cfg


def first_line(err: Exception, last: bool = False) -> str:
    """One line of an exception's message, at most 200 characters (``last``: the last line, where
    a config's syntax error names its file and line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or ['']
    return (lines[-1] if last else lines[0])[:200]


def host_of(config) -> str:
    """The host (``mmseg``, ``mmpose``, ``mmpretrain``) whose runner a config (a path or a loaded
    ``Config``) is for.

    Raises:
        HostError: As :func:`load_config`, or its ``default_scope`` names no host of this package.
    """
    from mmengine.config import Config
    cfg = config if isinstance(config, Config) else load_config(config)
    scope = cfg.get('default_scope')
    if scope not in HOSTS:
        raise HostError(f'{cfg.filename or config}: default_scope {scope!r} names no host of '
                        f'this package (one of {", ".join(HOSTS)})')
    return scope
