# OCRNet + HRFormer-B with 15x15 windows in every stage; official mIoU (single / multi-scale):
# 57.6 / 58.5. The window-7 ImageNet weights load as they are: the backbone resizes the bias tables
# (bilinear, as the official seg code) when the checkpoint is loaded.
# Drop path 0.3 as the official script for this model.
_base_ = ['./ocrnet_hrformer-b_4xb4-60k_pascal-context-59-520x520.py']
model = dict(backbone=dict(window_size=15, drop_path_rate=0.3))
