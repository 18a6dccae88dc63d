# OCRNet + HRFormer-B with 15x15 windows; official mIoU (single / multi-scale): B-w15 42.4 / 43.3.
# The window-7 ImageNet weights load directly: bias tables are resized (bilinear) on load.
_base_ = ['./ocrnet_hrformer-b_4xb4-60k_coco-stuff10k-520x520.py']
model = dict(backbone=dict(window_size=15))
