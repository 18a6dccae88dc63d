# OCRNet + HRFormer-B with 13x13 windows; official mIoU (single / multi-scale): B-w13 48.7 / 50.0.
# The window-7 ImageNet weights load directly: bias tables are resized (bilinear) on load.
_base_ = ['./ocrnet_hrformer-b_4xb2-150k_ade20k-520x520.py']
model = dict(backbone=dict(window_size=13))
