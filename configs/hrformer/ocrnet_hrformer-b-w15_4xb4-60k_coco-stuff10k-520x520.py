# OCRNet + HRFormer-B with 15x15 windows in every stage; official mIoU (single / multi-scale):
# 42.4 / 43.3. The window-7 ImageNet weights load as they are: the backbone resizes the bias tables
# (bilinear, as the official seg code) when the checkpoint is loaded.
_base_ = ['./ocrnet_hrformer-b_4xb4-60k_coco-stuff10k-520x520.py']
model = dict(backbone=dict(window_size=15))
