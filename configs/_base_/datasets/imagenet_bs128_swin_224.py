# The official HRFormer ImageNet data (HRNet/HRFormer, cls/): Swin's ImageNet pipeline, the one the
# official code inherited: RandomResizedCrop 224 bicubic, flip, RandAugment (timm_increasing, 2
# ops, m9, mstd 0.5), RandomErasing 0.25 per pixel; test bicubic short edge 256 + centre crop 224.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py']

# 128 images per GPU on 8 GPUs = 1024, for which the schedule's lr is set
# (imagenet_bs1024_adamw_hrformer.py; its auto_scale_lr rescales the lr for another total batch).
train_dataloader = dict(batch_size=128)
