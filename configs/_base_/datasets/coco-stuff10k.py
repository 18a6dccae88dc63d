# COCO-Stuff as trained officially (seg/scripts/coco_stuff/hrt/*.sh): openseg's COCO-Stuff is the
# 10k split (9k train / 1k test; the paper's table compares with HRNet-OCR's 10k result), 171
# classes. 16 images per iteration (official: 8 GPUs x 2; here 4 x 4, the same with SyncBN),
# 520x520 crops (pipelines_520.py).
_base_ = ['mmseg::_base_/datasets/coco-stuff10k.py', './pipelines_520.py']
tta_pipeline = _base_.pipelines_520.tta
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=_base_.pipelines_520.train))
val_dataloader = dict(dataset=dict(pipeline=_base_.pipelines_520.test))
test_dataloader = val_dataloader
