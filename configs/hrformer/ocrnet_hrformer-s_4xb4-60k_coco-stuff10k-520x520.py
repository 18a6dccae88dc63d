# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 37.9 / 38.9.
# Everything is in the bases: ./_base_/coco-stuff10k.py (data, schedule length) on
# ./_base_/ocrnet_hrformer-s.py (model) and ./_base_/adamw_poly.py (optimizer).
_base_ = ['./_base_/coco-stuff10k.py']
