# HRFormer-S ImageNet-1k classifier as the official code built it (HRNet/HRFormer, cls/, a Swin
# codebase): Mixup 0.8 / CutMix 1.0 (one per batch) and label smoothing 0.1 in training. The T / B
# configs only change the arch, the neck's input channels and the drop path rate.
custom_imports = dict(imports=['mmhrformer'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    # Scoped types, so the configs keep working should MMPretrain ever ship modules of these names.
    backbone=dict(type='mmhrformer.HRFormer', arch='small', drop_path_rate=0.0),
    neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=(32, 64, 128, 256)),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        # With Mixup / CutMix the targets are soft; smoothing them by 0.1 then cross-entropy is
        # timm's Mixup(label_smoothing=0.1) + SoftTargetCrossEntropy, as in the official code.
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    # Official: timm Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, mode='batch').
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
