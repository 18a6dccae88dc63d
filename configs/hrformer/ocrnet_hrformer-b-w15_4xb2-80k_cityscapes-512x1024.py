# OCRNet + HRFormer-B with 15x15 windows in every stage; official mIoU (single / multi-scale):
# 81.9 / 82.6. The window-7 ImageNet weights load as they are: the backbone resizes the bias tables
# (bilinear, as the official seg code) when the checkpoint is loaded.
_base_ = ['./ocrnet_hrformer-b_4xb2-80k_cityscapes-512x1024.py']
model = dict(backbone=dict(window_size=15))
# The official multi-scale test of this model (H_48_D_4_TEST.json) used seven scales 0.5-2.0 + flip.
tta_pipeline = [
    _base_.tta_pipeline[0],
    dict(_base_.tta_pipeline[1], transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True)
         for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)]] + _base_.tta_pipeline[1].transforms[1:]),
]
