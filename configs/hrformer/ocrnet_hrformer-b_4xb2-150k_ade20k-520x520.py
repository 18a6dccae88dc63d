# OCRNet + HRFormer-B; official mIoU (single / multi-scale): 46.3 / 47.6.
_base_ = ['./ocrnet_hrformer-s_4xb2-150k_ade20k-520x520.py']
# ImageNet weights: tools/model_converters/hrformer2mmseg.py hrt_base.pth
# checkpoints/hrformer-b_in1k.pth
pretrained = 'checkpoints/hrformer-b_in1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    decode_head=[dict(head, in_channels=[78, 156, 312, 624]) for head in _base_.model.decode_head])
