# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 80.0 / 81.0.
# Everything is in the bases: ./_base_/cityscapes.py (data, schedule length) on
# ./_base_/ocrnet_hrformer-s.py (model) and ./_base_/adamw_poly.py (optimizer).
_base_ = ['./_base_/cityscapes.py']
