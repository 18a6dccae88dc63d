"""Shared by the checkpoint tests, which build tiny models only."""
import pytest
import torch


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    # Tiny models: one thread is about as fast, and far faster when other jobs share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
