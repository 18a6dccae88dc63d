import logging

import pytest
import torch
from mmengine.logging import MMLogger


@pytest.fixture(autouse=True, scope='session')
def quiet_mmengine():
    # init_weights logs one line per parameter: thousands of lines per model.
    MMLogger.get_instance('mmengine').setLevel(logging.ERROR)
    torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
