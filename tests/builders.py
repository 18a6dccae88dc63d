"""Inputs and reference models on the hosts' side, shared by the tests.

Batches in each host's data format (MMSeg, MMPose, MMPretrain), MMPose 1.x's own HRFormer with
this package's weights (the independent implementation the converter and the benchmarks compare
with), and random BatchNorm statistics (eval-mode parity tests mean nothing with the identity
statistics of a fresh model).
"""
import numpy as np
import torch
from mmengine.structures import InstanceData, PixelData

from mmhrformer.checkpoint import mmpose_backbone_cfg

# One module per stage, 8-64 channels: every code path of the backbone at a fraction of the time.
MINI_ARCH = dict(num_modules=(1, 1, 1), channels=(8, 16, 32, 64), num_heads=(1, 2, 2, 4))


def randomize_bn(model, seed=0):
    """Random BN weights, biases and running statistics, as a trained model has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


def seg_batch(num_classes, n=2, size=(64, 64)):
    """(inputs, SegDataSamples with random labels) for an MMSeg segmentor."""
    from mmseg.structures import SegDataSample
    h, w = size
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w)))
        samples.append(s)
    return torch.rand(n, 3, h, w), samples


def pose_batch(n=2, size=(48, 64), keypoints=17):
    """(inputs, PoseDataSamples) for a TopDown estimator at input ``size`` (w, h): one box over
    the whole input, random target heatmaps at stride 4."""
    from mmpose.structures import PoseDataSample
    w, h = size
    samples = []
    for _ in range(n):
        s = PoseDataSample(metainfo=dict(
            img_shape=(h, w), input_size=(w, h), input_center=np.array([w / 2, h / 2]),
            input_scale=np.array([w, h], dtype=np.float32), flip_indices=list(range(keypoints))))
        s.gt_instances = InstanceData(bboxes=np.array([[0., 0., w, h]]), bbox_scores=np.ones(1))
        s.gt_instance_labels = InstanceData(keypoint_weights=torch.ones(1, keypoints))
        s.gt_fields = PixelData(heatmaps=torch.rand(keypoints, h // 4, w // 4))
        samples.append(s)
    return torch.rand(n, 3, h, w), samples


def cls_batch(num_classes, n=2, size=(64, 64)):
    """(inputs, DataSamples with labels) for an MMPretrain classifier."""
    from mmpretrain.structures import DataSample
    return torch.rand(n, 3, *size), [DataSample().set_gt_label(i % num_classes) for i in range(n)]


def ours_to_mmpose(sd):
    """This package's backbone names -> MMPose 1.x's (the tests' own mapping, written apart from
    the converter's so that one checks the other)."""
    out = {}
    for k, v in sd.items():
        if '.attn.q_proj.' in k:
            qkv = [v, sd[k.replace('q_proj', 'k_proj')], sd[k.replace('q_proj', 'v_proj')]]
            out[k.replace('.attn.q_proj.', '.attn.attn.qkv.')] = torch.cat(qkv)
        elif '.attn.k_proj.' in k or '.attn.v_proj.' in k:
            continue
        elif '.attn.out_proj.' in k:
            out[k.replace('.attn.out_proj.', '.attn.attn.proj.')] = v
        elif k.endswith('relative_position_bias_table'):
            out[k.replace('.attn.', '.attn.attn.')] = v
        else:
            out[k] = v
    return out


def mmpose_hrformer(arch='tiny', upsample_mode='bilinear', with_rpe=True, multiscale=True):
    """MMPose 1.x's own HRFormer with the structure of our ``arch``, in eval mode."""
    from mmpose.models.backbones import HRFormer as MMPoseHRFormer
    cfg = mmpose_backbone_cfg(arch, with_rpe, upsample_mode, multiscale)
    cfg.pop('type')
    model = MMPoseHRFormer(**cfg)
    model.eval()  # MMPose's HRNet.train() returns None: no chaining
    return model


def load_into_mmpose(model, ours_sd):
    """Our backbone weights into MMPose's model; only its index buffers may stay unloaded."""
    missing, unexpected = model.load_state_dict(ours_to_mmpose(ours_sd), strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith('relative_position_index') for k in missing), missing
