"""Fixtures shared by the whole suite, and how the suite shares two cores.

Helper modules: ``official.py`` (the official code transcribed, the checkpoints' facts),
``builders.py`` (host-side inputs and reference models), ``dist_cpu.py`` (two-process runs on the
CPU), ``shared.py`` (the shipped configs as MMEngine loads them, once per process).

The suite runs in pytest-xdist workers (``-n 2 --dist loadfile`` in pyproject.toml). Each worker
and each process it starts uses its share of the cores, one thread on two cores. A file runs in
one worker, so that its module fixtures (a training, an export, a wheel's venv) are built once;
what several files would need is built in one file and tested there. Files with slow tests are
handed out first, so that the two workers end together.
"""
import logging
import os

import pytest
import torch
from mmengine.logging import MMLogger

import official


def worker_threads() -> int:
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    return max(1, (os.cpu_count() or 1) // workers)


def pytest_configure(config):
    if 'PYTEST_XDIST_WORKER' in os.environ:
        # Before any test starts a process: the subprocesses (training, export, benchmarks)
        # inherit it, and OpenMP threads beyond a worker's share of the cores only wait at each
        # op's barrier for a descheduled peer.
        threads = str(worker_threads())
        os.environ['OMP_NUM_THREADS'] = threads
        os.environ['MKL_NUM_THREADS'] = threads
        torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(config, items):
    slow_files = {item.path for item in items if item.get_closest_marker('slow')}
    # Stable: each file's tests stay in order.
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(autouse=True, scope='session')
def quiet_mmengine():
    # init_weights logs one line per parameter: thousands of lines per model.
    MMLogger.get_instance('mmengine').setLevel(logging.ERROR)


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
    ``pytestmark = pytest.mark.usefixtures('one_thread')``; in the suite's workers every test
    already runs so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
