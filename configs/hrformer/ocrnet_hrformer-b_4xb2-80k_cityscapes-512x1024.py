# OCRNet + HRFormer-B; official mIoU (single / multi-scale): 81.4 / 82.0.
# Drop path 0.4 as the official Cityscapes-B scripts (export drop_path_rate=0.4; 0.2 elsewhere).
_base_ = ['./ocrnet_hrformer-s_4xb2-80k_cityscapes-512x1024.py']
# ImageNet weights: tools/model_converters/hrformer2mmseg.py hrt_base.pth
# checkpoints/hrformer-b_in1k.pth
pretrained = 'checkpoints/hrformer-b_in1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4, init_cfg=dict(checkpoint=pretrained)),
    decode_head=[dict(head, in_channels=[78, 156, 312, 624]) for head in _base_.model.decode_head])
