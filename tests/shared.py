"""What several test files load, once per process.

``shipped_config``: a config file as ``Config.fromfile`` loads it, loaded once per process. A config
with a host base (``mmseg::``, ``mmpose::``, ``mmpretrain::``) makes MMEngine read every metafile
of the host's model index, seconds per load, and the config tests read each shipped config in
several tests."""
import copy
import functools


@functools.lru_cache(maxsize=None)
def _loaded_config(path: str):
    from mmengine.config import Config
    return Config.fromfile(path)


def shipped_config(path):
    """``Config.fromfile(path)``, a copy that the test may change."""
    return copy.deepcopy(_loaded_config(str(path)))
