_base_ = ['./_base_hrformer_8xb128_in1k.py']

# HRFormer-T: 8.04M params, 78.6 top-1 (official).
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.0),
    neck=dict(in_channels=(18, 36, 72, 144)))
