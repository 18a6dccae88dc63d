# HRFormer-T: 8.04M params, 78.6 top-1 (official). The official recipe (HRNet/HRFormer, cls/) is in
# the bases, each setting with its source and the deviations.
_base_ = [
    '../_base_/models/cls_hrformer-s.py', '../_base_/datasets/imagenet_bs128_swin_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_hrformer.py', 'mmpretrain::_base_/default_runtime.py'
]

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.0),
    neck=dict(in_channels=(18, 36, 72, 144)))
