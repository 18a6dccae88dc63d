# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 44.0 / 45.1.
# Everything is in the bases: ./_base_/ade20k.py (data, schedule length) on
# ./_base_/ocrnet_hrformer-s.py (model) and ./_base_/adamw_poly.py (optimizer).
_base_ = ['./_base_/ade20k.py']
