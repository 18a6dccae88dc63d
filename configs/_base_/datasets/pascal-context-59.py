# PASCAL-Context (59 classes) as trained officially (seg/scripts/pascal_context/hrt/*.sh): 16 images
# per iteration (official: 8 GPUs x 2; here 4 x 4, the same with SyncBN), 520x520 crops
# (pipelines_520.py; MMSeg's own base crops 480 and tests with the long side at 520).
_base_ = ['mmseg::_base_/datasets/pascal_context_59.py', './pipelines_520.py']
tta_pipeline = _base_.pipelines_520.tta
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=_base_.pipelines_520.train))
val_dataloader = dict(dataset=dict(pipeline=_base_.pipelines_520.test))
test_dataloader = val_dataloader
