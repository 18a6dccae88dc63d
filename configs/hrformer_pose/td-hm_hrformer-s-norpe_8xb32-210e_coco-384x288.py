# For the official HRFormer pose checkpoints (HRNet/HRFormer pose/, mmpose 0.x): that code never
# added the relative position bias (HRFormer issue #32), so these weights need it off. Convert them
# with tools/model_converters/hrformer2mmseg.py, then: mim test mmpose
# td-hm_hrformer-s-norpe_8xb32-210e_coco-384x288.py --checkpoint CKPT
_base_ = ['./td-hm_hrformer-s_8xb32-210e_coco-384x288.py']
model = dict(backbone=dict(with_rpe=False, init_cfg=None))
