# TopDown heatmap + HRFormer-S, COCO 256x192; official AP 74.0 (val2017, person detections, flip
# test). MMPose's own HRFormer config with this package's backbone: its data pipeline, MSRAHeatmap
# codec (sigma 2), HeatmapHead, AdamW 5e-4 / wd 0.01, 500-iter warm-up and steps at 170 / 200 of 210
# epochs are the official recipe. Deviation: MMPose 1.x's augmentation (RandomBBoxTransform) also
# shifts the box (p 0.3) and draws rotation (+-80 deg, p 0.6) and scale (0.5-1.5) from truncated
# unit normals; the official 0.x pipeline did not shift and used N(0, 40 deg) and N(1, 0.5),
# clipped.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrformer-small_8xb32-210e_coco-256x192.py',
    '../_base_/models/td-hm_hrformer.py',
]

# ImageNet weights: tools/model_converters/hrformer2mmseg.py hrt_small.pth
# checkpoints/hrformer-s_in1k.pth
pretrained = 'checkpoints/hrformer-s_in1k.pth'
model = dict(backbone=dict(
    _base_.hrformer_backbone, arch='small', drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
# MMPose's SyncBuffersHook, plus a warning with the measured cost when `compile` is turned on.
custom_hooks = _base_.custom_hooks + [dict(type='mmhrformer.CompileAdviceHook')]
# MMPose's AdamW, fused: one kernel for all parameters (CPU and CUDA), the same update; on a CPU the
# default per-tensor loop costs HRFormer-S 70 ms a step, fused 17 ms.
optim_wrapper = dict(optimizer=dict(fused=True))
