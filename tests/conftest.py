"""Fixtures shared by the whole suite, and how the suite shares two cores.

Helper modules: ``official.py`` (the official code transcribed, the checkpoints' facts),
``builders.py`` (host-side inputs and reference models), ``dist_cpu.py`` (two-process runs on the
CPU), ``shared.py`` (what several test files build once per session: the quickstart's training).

The suite runs in pytest-xdist workers (``-n 2 --dist loadgroup`` in pyproject.toml). Each worker
and each process it starts uses its share of the cores, one thread on two cores. A module fixture
or a fixture of ``shared.py`` is built by one worker only: every test that uses it is put in one
xdist group. Files with slow tests are handed out first, so that the two workers end together.
"""
import logging
import os

import pytest
import torch
from mmengine.logging import MMLogger

import official
from shared import quickstart  # noqa: F401  (a session fixture, see tests/shared.py)

SHARED_MODULE = 'shared'


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


def shared_fixture(item):
    """The group of the first non-function fixture ``item`` uses that is built in its own module
    or in shared.py, or None."""
    for name in item.fixturenames:
        defs = item._fixtureinfo.name2fixturedefs.get(name)
        if not defs or defs[-1].scope == 'function':
            continue
        home = defs[-1].func.__module__
        if home == SHARED_MODULE:
            return name
        if home == item.module.__name__:
            return f'{item.module.__name__}.{name}'
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = shared_fixture(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    slow_files = {item.path for item in items if item.get_closest_marker('slow')}
    # Stable: each file's tests stay together and in order (module fixtures are built once).
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
