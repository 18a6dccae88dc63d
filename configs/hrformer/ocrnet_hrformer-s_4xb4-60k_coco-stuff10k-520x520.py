# OCRNet + HRFormer-S; official mIoU (single / multi-scale): 37.9 / 38.9. The official COCO-Stuff
# runs (seg/scripts/coco_stuff/hrt/*.sh) trained 60k iterations.
_base_ = [
    '../_base_/models/ocrnet_hrformer-s.py', '../_base_/datasets/coco-stuff10k.py',
    '../_base_/schedules/adamw-poly_60k.py', 'mmseg::_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.pipelines_520.crop_size),
    decode_head=[
        dict(_base_.model.decode_head[0], num_classes=171),
        # OHEM: openseg keeps at least 100000 pixels per GPU batch of 2 images, MMSeg's min_kept
        # counts per image: 50000.
        dict(_base_.model.decode_head[1], num_classes=171,
             sampler=dict(_base_.model.decode_head[1].sampler, min_kept=50000)),
    ])
