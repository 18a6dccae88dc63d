# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 44.0 / 45.1. The official ADE20K runs
# (seg/scripts/ade20k/hrt/*.sh) trained 150k iterations.
_base_ = [
    '../_base_/models/ocrnet_hrformer-s.py', '../_base_/datasets/ade20k.py',
    '../_base_/schedules/adamw-poly_150k.py', 'mmseg::_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.pipelines_520.crop_size),
    decode_head=[dict(head, num_classes=150) for head in _base_.model.decode_head])
