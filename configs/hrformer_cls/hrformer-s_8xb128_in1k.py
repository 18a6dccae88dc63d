_base_ = ['./_base_hrformer_8xb128_in1k.py']

# HRFormer-S: 13.54M params, 81.2 top-1 (official).
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.0),
    neck=dict(in_channels=(32, 64, 128, 256)))
