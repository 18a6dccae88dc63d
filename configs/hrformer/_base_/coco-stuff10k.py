# COCO-Stuff as trained officially (seg/scripts/coco_stuff/hrt/*.sh): openseg's COCO-Stuff is the
# 10k split (9k train / 1k test; the paper's table compares with HRNet-OCR's 10k result), 171
# classes. 16 images per iteration (official: 8 GPUs x 2; here 4 x 4, the same with SyncBN), 60k
# iterations, 520x520 crops (pipelines_520.py). OHEM: openseg keeps at least 100000 pixels per GPU
# batch of 2 images, MMSeg's min_kept counts per image: 50000.
_base_ = [
    'mmseg::_base_/datasets/coco-stuff10k.py', 'mmseg::_base_/default_runtime.py',
    './adamw_poly.py', './ocrnet_hrformer-s.py', './pipelines_520.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.pipelines_520.crop_size),
    decode_head=[
        dict(_base_.model.decode_head[0], num_classes=171),
        dict(_base_.model.decode_head[1], num_classes=171,
             sampler=dict(_base_.model.decode_head[1].sampler, min_kept=50000)),
    ])
tta_pipeline = _base_.pipelines_520.tta
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=_base_.pipelines_520.train))
val_dataloader = dict(dataset=dict(pipeline=_base_.pipelines_520.test))
test_dataloader = val_dataloader
max_iters = 60000
train_cfg = dict(max_iters=max_iters, val_interval=6000)
default_hooks = dict(checkpoint=dict(interval=6000))
param_scheduler = [
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=max_iters),
]
