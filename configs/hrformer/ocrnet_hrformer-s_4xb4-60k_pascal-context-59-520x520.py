# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 53.8 / 54.6. The official
# PASCAL-Context runs (seg/scripts/pascal_context/hrt/*.sh) trained 60k iterations.
_base_ = [
    '../_base_/models/ocrnet_hrformer-s.py', '../_base_/datasets/pascal-context-59.py',
    '../_base_/schedules/adamw-poly_60k.py', 'mmseg::_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.pipelines_520.crop_size),
    # plain cross-entropy on the OCR head: these scripts use fs_auxce_loss, no OHEM
    decode_head=[dict(head, num_classes=59, sampler=None) for head in _base_.model.decode_head])
