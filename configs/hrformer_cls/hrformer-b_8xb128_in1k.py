_base_ = ['./_base_hrformer_8xb128_in1k.py']

# HRFormer-B: 50.32M params, 82.8 top-1 (official).
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2),
    neck=dict(in_channels=(78, 156, 312, 624)))
