"""Writes ``configs/settings_index.json``: what each shipped config sets that a checkpoint's weights
may need (host, arch, ``with_rpe``, ``upsample_mode``, ``bgr_to_rgb``), read by the commands'
refusal to name the config that fits (``mmhrformer/checkpoint/settings.py``). Run it after changing
a config; until then the refusal loads every config itself (about a minute), and
tests/test_configs.py fails.

Usage: ``python tools/make_settings_index.py``.
"""
from pathlib import Path

from mmhrformer.checkpoint.settings import write_settings_index

if __name__ == '__main__':
    print(write_settings_index(Path(__file__).resolve().parents[1] / 'configs'))
