# Cityscapes as trained officially (seg/scripts/cityscapes/hrt/*.sh,
# seg/configs/cityscapes/H_48_D_4.json): 8 images per iteration (the official runs: 8 GPUs x 1; here
# 4 x 2, the same with SyncBN), 80k iterations, 512x1024 crops after random scaling 0.5-2.0 of the
# 2048x1024 frames, flip, brightness shift +-10; test on the whole 2048x1024 frame; multi-scale test
# 0.75 / 1.0 / 1.25 + flip. The official loss weighs the 19 classes (ce_weight below, on both
# heads). Deviations: no aspect-ratio jitter (openseg: 0.9-1.1); brightness shifted with probability
# 0.5.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/default_runtime.py', './adamw_poly.py',
    './ocrnet_hrformer-s.py'
]
class_weight = [
    0.8373, 0.9180, 0.8660, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539, 0.9843,
    1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507
]
model = dict(
    data_preprocessor=dict(size=(512, 1024)),
    decode_head=[
        dict(head, loss_decode=dict(head.loss_decode, class_weight=class_weight))
        for head in _base_.model.decode_head
    ])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 1024)),  # openseg: no cat_max_ratio
    dict(type='RandomFlip', prob=0.5),
    # brightness only (hue_delta=0 crashes MMSeg's randint(0, 0); 1 moves hue by <= 1 of 180 steps)
    dict(type='PhotoMetricDistortion', brightness_delta=10, contrast_range=(1.0, 1.0),
         saturation_range=(1.0, 1.0), hue_delta=1),
    dict(type='PackSegInputs')
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.75, 1.0, 1.25)],
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')]])
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
max_iters = 80000
train_cfg = dict(max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
