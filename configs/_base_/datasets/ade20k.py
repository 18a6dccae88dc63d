# ADE20K as trained officially (seg/scripts/ade20k/hrt/*.sh): 8 images per iteration (official: 8
# GPUs x 1; here 4 x 2, the same with SyncBN), 520x520 crops (pipelines_520.py).
_base_ = ['mmseg::_base_/datasets/ade20k.py', './pipelines_520.py']
tta_pipeline = _base_.pipelines_520.tta
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=_base_.pipelines_520.train))
val_dataloader = dict(dataset=dict(pipeline=_base_.pipelines_520.test))
test_dataloader = val_dataloader
