# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 53.8 / 54.6.
# Everything is in the bases: ./_base_/pascal-context-59.py (data, schedule length) on
# ./_base_/ocrnet_hrformer-s.py (model) and ./_base_/adamw_poly.py (optimizer).
_base_ = ['./_base_/pascal-context-59.py']
