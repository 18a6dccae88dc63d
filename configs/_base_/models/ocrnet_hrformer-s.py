# OCRNet with HRFormer-S as the official openseg code trained it (HRNet/HRFormer seg/,
# HRT_*_OCR_V2): resized-and-concatenated branches -> aux FCN head (3x3 conv to 512, CE x 0.4) and
# OCR head (512 / 256, dropout 0.05, OHEM CE x 1.0: pixels with probability < 0.9, at least 100000
# per image; the official runs held 1 image per GPU, and openseg counts per GPU batch). Drop path
# 0.2 (openseg's HRT default). Deviation: MMSeg averages the OHEM-kept losses over all pixels,
# openseg over the kept ones; the OCR loss therefore weighs less against the aux loss than
# officially (by the kept fraction).
custom_imports = dict(imports=['mmhrformer'], allow_failed_imports=False)

# ImageNet weights: tools/model_converters/hrformer2mmseg.py hrt_small.pth
# checkpoints/hrformer-s_in1k.pth
pretrained = 'checkpoints/hrformer-s_in1k.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)
channels = [32, 64, 128, 256]
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,  # openseg fed BGR images with RGB-ordered mean/std; we normalise correctly
    pad_val=0,
    seg_pad_val=255)
heads = dict(
    in_channels=channels,
    in_index=(0, 1, 2, 3),
    input_transform='resize_concat',
    norm_cfg=norm_cfg,
    align_corners=True)  # openseg resizes with align_corners=True everywhere
model = dict(
    type='CascadeEncoderDecoder',
    data_preprocessor=data_preprocessor,
    num_stages=2,
    backbone=dict(
        type='mmhrformer.HRFormer',
        arch='small',
        drop_path_rate=0.2,
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=[
        dict(type='FCNHead', channels=512, kernel_size=3, num_convs=1, concat_input=False,
             dropout_ratio=-1, num_classes=19, **heads,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
        dict(type='OCRHead', channels=512, ocr_channels=256, dropout_ratio=0.05, num_classes=19,
             **heads, sampler=dict(type='OHEMPixelSampler', thresh=0.9, min_kept=100000),
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
