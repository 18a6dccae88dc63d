# HRFormer-B: 50.32M params, 82.8 top-1 (official). The official recipe (HRNet/HRFormer, cls/) is in
# the bases, each setting with its source and the deviations.
_base_ = [
    '../_base_/models/cls_hrformer-s.py', '../_base_/datasets/imagenet_bs128_swin_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_hrformer.py', 'mmpretrain::_base_/default_runtime.py'
]

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2),
    neck=dict(in_channels=(78, 156, 312, 624)))
