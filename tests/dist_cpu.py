"""Distributed training on CPU with a host's own tools/train.py, for tests/test_quickstart.py.

As a script, under torchrun: ``torchrun --nproc_per_node 2 tests/dist_cpu.py HOST_TRAIN_PY CONFIG
--launcher pytorch --cfg-options model_wrapper_cfg.type=MMDistributedDataParallel
model_wrapper_cfg.device_ids=None ...``. MMEngine 0.10.7's ``init_dist`` calls
``torch.cuda.set_device`` whatever the backend, which fails without a GPU; a gloo process group
made here first makes the Runner skip ``init_dist``. Its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``, which DDP refuses for a CPU module, hence ``device_ids=None``.

As a module (``custom_imports=dict(imports=['dist_cpu'])`` with tests/ on PYTHONPATH): registers
``WeightsDigestHook``, which makes each rank write digests of its parameters and buffers before and
after training, to compare the ranks.
"""
import hashlib
import json
import os
import runpy
import sys

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def digest(tensors):
    h = hashlib.sha256()
    for name, t in sorted(tensors.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@HOOKS.register_module(force=True)  # defined in __main__ too when run as the launcher
class WeightsDigestHook(Hook):
    priority = 'LOWEST'

    def _write(self, runner, stage):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        rank, world_size = get_dist_info()
        record = dict(rank=rank, world_size=world_size, iter=runner.iter,
                      model_wrapper=type(runner.model).__name__,
                      params=digest(dict(model.named_parameters())),
                      param_names=sorted(n for n, _ in model.named_parameters()),
                      buffers=digest(dict(model.named_buffers())))
        with open(os.path.join(runner.work_dir, f'digest_{stage}_rank{rank}.json'), 'w') as f:
            json.dump(record, f)

    def before_train(self, runner):
        self._write(runner, 'before')

    def after_train(self, runner):
        self._write(runner, 'after')


if __name__ == '__main__':
    import torch.distributed as dist
    dist.init_process_group('gloo')
    script, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_path(script, run_name='__main__')
