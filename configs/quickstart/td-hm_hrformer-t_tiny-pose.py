# Quickstart: TopDown heatmap pose estimation with HRFormer-T, trained from scratch on the shipped
# tiny_pose set (COCO format; stick figures whose 17 keypoints are dots of 17 hues; 48 train / 16
# val images of 96x96, made by tools/make_tiny_data.py) on the CPU in a couple of minutes:
#   python tools/quickstart.py   (this and the seg quickstart side by side, then pictures)
#   mim train mmpose configs/quickstart/td-hm_hrformer-t_tiny-pose.py
#   mim test mmpose configs/quickstart/td-hm_hrformer-t_tiny-pose.py \
#       --checkpoint work_dirs/quickstart/td-hm_hrformer-t_tiny-pose/iter_200.pth
# The model is MMPose's HRFormer TopDown layout (configs/hrformer_pose/): branch 0 only (18
# channels, stride 4) into a HeatmapHead without deconvolutions, bilinear fusion upsampling,
# MSRAHeatmap codec. Ground-truth boxes at test time; no flip augmentation or flip test (left and
# right keypoints have hues of their own).
_base_ = ['mmpose::_base_/default_runtime.py']
custom_imports = dict(imports=['mmhrformer'], allow_failed_imports=False)

max_iters = 200
codec = dict(type='MSRAHeatmap', input_size=(48, 64), heatmap_size=(12, 16), sigma=2)
model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='mmhrformer.HRFormer',  # the bare 'HRFormer' is MMPose's own
        arch='tiny',
        out_indices=(0, ),
        upsample_mode='bilinear'),
    head=dict(
        type='HeatmapHead',
        in_channels=18,
        out_channels=17,
        deconv_out_channels=None,
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=False))

# data: MMPose's CocoDataset (COCO keypoint metainfo); paths relative to this file
data_root = '{{ fileDirname }}/../../demo/data/tiny_pose/'
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomBBoxTransform', shift_factor=0.08, scale_factor=(0.85, 1.15),
         rotate_factor=15),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]
# MMPose's inferencer reads these two top-level keys (as MMPose's own configs set them).
dataset_type = 'CocoDataset'
data_mode = 'topdown'
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

# schedule: iteration based, AdamW, warm-up then cosine. One parameter group: the paper recipes'
# weight-decay exceptions (norms, biases, position bias tables) make one group per parameter, which
# costs ~5 % of a step here and logs ~1000 lines, and do not matter in a 200-iteration run.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01, fused=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1,
                    save_best=None))
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
work_dir = 'work_dirs/quickstart/td-hm_hrformer-t_tiny-pose'
# MMPose's SyncBuffersHook, plus a warning with the measured cost when `compile` is turned on.
custom_hooks = _base_.custom_hooks + [dict(type='mmhrformer.CompileAdviceHook')]
