# Cityscapes as trained officially: 8 images per iteration (4 GPUs x 2), 80k iters, 512x1024 crops.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/default_runtime.py', './adamw_poly.py',
    './ocrnet_hrformer-s.py'
]
model = dict(data_preprocessor=dict(size=(512, 1024)))
train_dataloader = dict(batch_size=2)
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=1500, end=80000),
]
