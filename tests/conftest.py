"""Fixtures shared by the whole suite. Helper modules: ``official.py`` (the official code
transcribed, the checkpoints' facts), ``builders.py`` (host-side inputs and reference models),
``dist_cpu.py`` (two-process runs on the CPU)."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger

import official


@pytest.fixture(autouse=True, scope='session')
def quiet_mmengine():
    # init_weights logs one line per parameter: thousands of lines per model.
    MMLogger.get_instance('mmengine').setLevel(logging.ERROR)
    torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def official_tiny():
    """A random official HRFormer-T classification state dict (official key names)."""
    return official.random_state_dict('tiny', seed=0)


@pytest.fixture(scope='module')
def one_thread():
    """One thread for a module of tiny models: about as fast as two, and far faster when other
    jobs share the cores (each op then waits at OpenMP's barrier for a descheduled thread: a small
    forward pass measured 6 s with two threads, 0.04 s with one). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
