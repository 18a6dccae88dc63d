# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 80.0 / 81.0. The official Cityscapes
# runs (seg/scripts/cityscapes/hrt/*.sh) trained 80k iterations.
_base_ = [
    '../_base_/models/ocrnet_hrformer-s.py', '../_base_/datasets/cityscapes.py',
    '../_base_/schedules/adamw-poly_80k.py', 'mmseg::_base_/default_runtime.py'
]
# The official loss weighs the 19 classes (seg/configs/cityscapes/H_48_D_4.json: ce_weight), on
# both heads.
class_weight = [
    0.8373, 0.9180, 0.8660, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786, 1.0023, 0.9539, 0.9843,
    1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529, 1.0507
]
model = dict(
    data_preprocessor=dict(size=(512, 1024)),
    decode_head=[
        dict(head, loss_decode=dict(head.loss_decode, class_weight=class_weight))
        for head in _base_.model.decode_head
    ])
