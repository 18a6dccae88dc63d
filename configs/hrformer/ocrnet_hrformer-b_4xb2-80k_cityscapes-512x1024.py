# OCRNet + HRFormer-B; official mIoU (single / multi-scale): B 81.4 / 82.0.
_base_ = ['./ocrnet_hrformer-s_4xb2-80k_cityscapes-512x1024.py']
heads = dict(in_channels=[78, 156, 312, 624], in_index=(0, 1, 2, 3), input_transform='resize_concat',
             norm_cfg={{_base_.norm_cfg}}, align_corners=True, num_classes=19)
model = dict(backbone=dict(
        arch='base', drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/hrformer-b_in1k.pth')),
    decode_head=[
    dict(type='FCNHead', channels=512, kernel_size=3, num_convs=1, concat_input=False,
         dropout_ratio=-1, **heads,
         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    dict(type='OCRHead', channels=512, ocr_channels=256, dropout_ratio=0.05, **heads,
         sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=100000),
         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
])
