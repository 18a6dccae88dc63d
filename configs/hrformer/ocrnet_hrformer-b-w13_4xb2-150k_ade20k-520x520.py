# OCRNet + HRFormer-B with 13x13 windows in every stage; official mIoU (single / multi-scale):
# 48.7 / 50.0. The window-7 ImageNet weights load as they are: the backbone resizes the bias tables
# (bilinear, as the official seg code) when the checkpoint is loaded.
_base_ = ['./ocrnet_hrformer-b_4xb2-150k_ade20k-520x520.py']
model = dict(backbone=dict(window_size=13))
