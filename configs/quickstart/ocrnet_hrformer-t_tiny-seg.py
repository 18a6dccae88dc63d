# Quickstart: OCRNet + HRFormer-T trained from scratch on the shipped tiny_seg set (4 classes:
# background and reddish discs, greenish squares, bluish triangles; 40 train / 12 val images of
# 64x64, made by tools/make_tiny_data.py) on the CPU in a couple of minutes:
#   python tools/quickstart.py   (this and the pose quickstart side by side, then pictures)
#   mim train mmseg configs/quickstart/ocrnet_hrformer-t_tiny-seg.py
#   mim test mmseg configs/quickstart/ocrnet_hrformer-t_tiny-seg.py \
#       --checkpoint work_dirs/quickstart/ocrnet_hrformer-t_tiny-seg/iter_200.pth [--tta]
# The model is the paper's OCRNet layout (configs/hrformer/) made small: HRFormer-T, resized and
# concatenated branches into an FCN aux head (loss weight 0.4) and an OCR head, both 64 channels
# wide, plain BN, no pretrained weights, no OHEM; AdamW with a higher learning rate for the short
# schedule.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmhrformer'], allow_failed_imports=False)

max_iters = 200
crop_size = (64, 64)
num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)
heads = dict(
    in_channels=[18, 36, 72, 144],
    in_index=(0, 1, 2, 3),
    input_transform='resize_concat',
    channels=64,
    dropout_ratio=-1,
    num_classes=num_classes,
    norm_cfg=norm_cfg,
    align_corners=False)
model = dict(
    type='CascadeEncoderDecoder',
    num_stages=2,
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    backbone=dict(type='mmhrformer.HRFormer', arch='tiny', norm_cfg=norm_cfg),
    decode_head=[
        dict(type='FCNHead', kernel_size=1, num_convs=1, concat_input=False, **heads,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        dict(type='OCRHead', ocr_channels=32, **heads,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# data: a stock BaseSegDataset; the path is relative to this file, so any working directory works
data_root = '{{ fileDirname }}/../../demo/data/tiny_seg'
metainfo = dict(
    classes=('background', 'disc', 'square', 'triangle'),
    palette=[[0, 0, 0], [220, 40, 60], [40, 180, 40], [40, 90, 230]])
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# `tools/test.py --tta` (MMSeg's SegTTAModel, from default_runtime): the paper configs' scales and
# flips, predictions averaged.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.75, 1.0, 1.25)],
        [dict(type='RandomFlip', prob=p, direction='horizontal') for p in (0.0, 1.0)],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# schedule: iteration based, AdamW, warm-up then poly. One parameter group: the paper recipes'
# weight-decay exceptions (norms, biases, position bias tables) make one group per parameter, which
# costs ~5 % of a step here and logs ~1000 lines, and do not matter in a 200-iteration run.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01, fused=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
work_dir = 'work_dirs/quickstart/ocrnet_hrformer-t_tiny-seg'
# A warning with the measured cost of torch.compile when `compile` is turned on.
custom_hooks = [dict(type='mmhrformer.CompileAdviceHook')]
