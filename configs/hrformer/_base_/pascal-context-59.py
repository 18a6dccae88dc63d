# PASCAL-Context (59 classes) as trained officially (seg/scripts/pascal_context/hrt/*.sh): 16 images
# per iteration (official: 8 GPUs x 2; here 4 x 4, the same with SyncBN), 60k iterations, 520x520
# crops (pipelines_520.py; MMSeg's own base crops 480 and tests with the long side at 520), and
# plain cross-entropy on the OCR head: these scripts use fs_auxce_loss, no OHEM.
_base_ = [
    'mmseg::_base_/datasets/pascal_context_59.py', 'mmseg::_base_/default_runtime.py',
    './adamw_poly.py', './ocrnet_hrformer-s.py', './pipelines_520.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.pipelines_520.crop_size),
    decode_head=[dict(head, num_classes=59, sampler=None) for head in _base_.model.decode_head])
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
