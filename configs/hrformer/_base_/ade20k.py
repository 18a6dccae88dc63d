# ADE20K as trained officially (seg/scripts/ade20k/hrt/*.sh): 8 images per iteration (official: 8
# GPUs x 1; here 4 x 2, the same with SyncBN), 150k iterations, 520x520 crops (pipelines_520.py).
_base_ = [
    'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py', './adamw_poly.py',
    './ocrnet_hrformer-s.py', './pipelines_520.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.pipelines_520.crop_size),
    decode_head=[dict(head, num_classes=150) for head in _base_.model.decode_head])
tta_pipeline = _base_.pipelines_520.tta
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=_base_.pipelines_520.train))
val_dataloader = dict(dataset=dict(pipeline=_base_.pipelines_520.test))
test_dataloader = val_dataloader
max_iters = 150000
train_cfg = dict(max_iters=max_iters, val_interval=15000)
default_hooks = dict(checkpoint=dict(interval=15000))
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=max_iters),
]
