# OCRNet + HRFormer-B with 15x15 windows; official mIoU (single / multi-scale): B-w15 81.9 / 82.6.
# The window-7 ImageNet weights load directly: bias tables are resized (bilinear) on load.
_base_ = ['./ocrnet_hrformer-b_4xb2-80k_cityscapes-512x1024.py']
model = dict(backbone=dict(window_size=15))
