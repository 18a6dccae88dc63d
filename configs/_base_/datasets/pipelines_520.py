# Data pipelines of the official ADE20K, PASCAL-Context and COCO-Stuff runs (seg/configs/{ade20k,
# pascal_context,coco_stuff}/H_48_D_4*.json), shared by their dataset bases under one key: train:
# resize the short side to 520, random scale 0.5-2.0, random 520x520 crop (padded), flip, brightness
# shift +-10; test: short side 520, whole image; multi-scale test 0.75 / 1.0 / 1.25 + flip.
# Deviations: openseg also jitters the aspect ratio by 0.9-1.1 (MMSeg's RandomResize has no such
# option) and shifts brightness on every image (MMSeg's PhotoMetricDistortion: with probability 0.5;
# its contrast / saturation / hue steps are set to (near-)identities here).
crop = (520, 520)
# brightness only (hue_delta=0 crashes MMSeg's randint(0, 0); 1 moves hue by at most 1 of 180 steps)
photometric = dict(type='PhotoMetricDistortion', brightness_delta=10, contrast_range=(1.0, 1.0),
                   saturation_range=(1.0, 1.0), hue_delta=1)
pipelines_520 = dict(
    crop_size=crop,
    train=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(2048, 520), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop),  # openseg: no cat_max_ratio
        dict(type='RandomFlip', prob=0.5),
        photometric,
        dict(type='PackSegInputs')
    ],
    test=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 520), keep_ratio=True),  # MMSeg's bases: 512 (ADE, COCO)
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ],
    tta=[
        dict(type='LoadImageFromFile'),
        dict(type='TestTimeAug', transforms=[
            [dict(type='Resize', scale=(int(2048 * r), int(520 * r)), keep_ratio=True)
             for r in (0.75, 1.0, 1.25)],
            [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
             dict(type='RandomFlip', prob=1.0, direction='horizontal')],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')]])
    ])
del crop, photometric
