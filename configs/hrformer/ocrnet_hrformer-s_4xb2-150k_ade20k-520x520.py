# OCRNet + HRFormer-S; official mIoU (single / multi-scale): S 44.0 / 45.1.
_base_ = ['./_base_/ade20k.py']
heads = dict(in_channels=[32, 64, 128, 256], in_index=(0, 1, 2, 3), input_transform='resize_concat',
             norm_cfg={{_base_.norm_cfg}}, align_corners=True, num_classes=150)
model = dict(decode_head=[
    dict(type='FCNHead', channels=512, kernel_size=3, num_convs=1, concat_input=False,
         dropout_ratio=-1, **heads,
         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    dict(type='OCRHead', channels=512, ocr_channels=256, dropout_ratio=0.05, **heads,
         sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=100000),
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
])
