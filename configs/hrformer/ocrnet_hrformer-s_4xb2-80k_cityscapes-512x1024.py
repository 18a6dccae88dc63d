# OCRNet + HRFormer-S; official mIoU (single / multi-scale): S 80.0 / 81.0.
_base_ = ['./_base_/cityscapes.py']
