# The seg schedule of adamw-poly_80k.py over 60k iterations; validation and a checkpoint every
# tenth of the run, as MMSeg's 80k schedule.
_base_ = ['./adamw-poly_80k.py']
max_iters = 60000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 10)
default_hooks = dict(checkpoint=dict(interval=max_iters // 10))
param_scheduler = [_base_.param_scheduler[0], dict(_base_.param_scheduler[1], end=max_iters)]
