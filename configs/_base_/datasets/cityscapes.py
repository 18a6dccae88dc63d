# Cityscapes as trained officially (seg/scripts/cityscapes/hrt/*.sh,
# seg/configs/cityscapes/H_48_D_4.json): 8 images per iteration (the official runs: 8 GPUs x 1; here
# 4 x 2, the same with SyncBN), 512x1024 crops after random scaling 0.5-2.0 of the 2048x1024
# frames, flip, brightness shift +-10; test on the whole 2048x1024 frame; multi-scale test 0.75 /
# 1.0 / 1.25 + flip. Deviations: no aspect-ratio jitter (openseg: 0.9-1.1); brightness shifted with
# probability 0.5.
_base_ = ['mmseg::_base_/datasets/cityscapes.py']
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
