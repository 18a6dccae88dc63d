# OCRNet + HRFormer-B with 15x15 windows; official mIoU (single / multi-scale): B-w15 57.6 / 58.5.
# The window-7 ImageNet weights load directly: bias tables are resized (bilinear) on load.
_base_ = ['./ocrnet_hrformer-b_4xb4-60k_pascal-context-59-520x520.py']
model = dict(backbone=dict(window_size=15, drop_path_rate=0.3))
