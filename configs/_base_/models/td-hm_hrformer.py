# This package's HRFormer as the backbone of MMPose's TopDown heatmap HRFormer configs, which the
# configs in hrformer_pose/ inherit next to this file; they add the arch, the drop path rate and
# the ImageNet weights. A backbone dict, not a ``model``: MMEngine refuses a key that two bases of
# one config both set, and MMPose's config sets ``model``.
custom_imports = dict(imports=['mmhrformer'], allow_failed_imports=False)

hrformer_backbone = dict(
    _delete_=True,  # replaces MMPose's backbone as a whole
    type='mmhrformer.HRFormer',  # the bare 'HRFormer' is MMPose's own
    upsample_mode='bilinear',  # as the official pose code and MMPose
    out_indices=(0, ),
    norm_cfg=dict(type='SyncBN', requires_grad=True))
