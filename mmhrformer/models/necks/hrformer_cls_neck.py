"""The HRFormer ImageNet classification head as an MMPretrain neck.

The official classifier (``cls/models/hrt.py`` of HRNet/HRFormer) turns the four branch outputs of
the backbone into one 2048-d vector the HRNet-v1 way:

1. ``incre_modules``: one bottleneck with a depthwise 3x3 conv (the official "BottleneckDWP",
   :class:`~mmhrformer.layers.Bottleneck` with ``groups=planes``) per branch widens
   C, 2C, 4C, 8C to 128, 256, 512, 1024 channels;
2. ``downsamp_modules``: from the highest resolution down, ``y = incre[i + 1](x[i + 1]) +
   downsamp[i](y)``, where each downsample is a stride-2 depthwise 3x3 conv + BN + 1x1 conv + BN +
   ReLU (both convs with a bias);
3. ``final_layer``: 1x1 conv 1024 -> 2048 (with a bias) + BN + ReLU, then a global average pool.

The linear classifier on top is MMPretrain's ``LinearClsHead(num_classes, in_channels=2048)``.
MMPretrain's own ``HRFuseScales`` neck is a different structure (no depthwise bottlenecks, no final
2048-d layer), so the official weights need this one. Module names equal the official ones, so an
official checkpoint maps by a prefix alone (:mod:`mmhrformer.checkpoint`).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ...layers import Bottleneck, ConvNormSequential, build_norm
from ..backbones.hrformer import OFFICIAL_INIT

# Official head layout: bottleneck planes per branch (x4 expansion -> 128, 256, 512, 1024 channels)
# and the width of the pooled feature.
HEAD_PLANES = (32, 64, 128, 256)
HEAD_OUT_CHANNELS = 2048


class HRFormerClsNeck(BaseModule):
    """HRFormer's official classification head up to the pooled feature, as an MMPretrain neck.

    Per branch a depthwise :class:`~mmhrformer.layers.Bottleneck` (``incre_modules``), then a high-to-low accumulation through
    stride-2 ``downsamp_modules``, a 1x1 ``final_layer`` to ``out_channels`` and a global average
    pool. With the defaults and a four-branch backbone it is exactly the official head (without the
    final ``classifier`` Linear, which is ``LinearClsHead``'s ``fc``).

    Args:
        in_channels (Sequence[int]): Channels of the backbone's maps, highest resolution first, each
            map half the size of the previous one: (18, 36, 72, 144) for HRFormer-T, (32, 64, 128,
            256) for S, (78, 156, 312, 624) for B.
        head_planes (Sequence[int]): Bottleneck width per branch; branch i is widened to
            ``head_planes[i] * 4`` channels. Default: (32, 64, 128, 256) (official).
        out_channels (int): Channels of the pooled feature. Default: 2048 (official).
        norm_cfg (dict): Norm layer config. Default: ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): MMEngine init config. Default: the official init,
            Kaiming-normal (fan_out, ReLU) convs and unit-weight, zero-bias norms.

    Example:
        >>> neck = HRFormerClsNeck(in_channels=(32, 64, 128, 256)).eval()
        >>> channels = (32, 64, 128, 256)
        >>> feats = [torch.rand(2, c, 56 // 2**i, 56 // 2**i) for i, c in enumerate(channels)]
        >>> [tuple(o.shape) for o in neck(feats)]
        [(2, 2048)]
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 head_planes: Sequence[int] = HEAD_PLANES,
                 out_channels: int = HEAD_OUT_CHANNELS,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=OFFICIAL_INIT if init_cfg is None else init_cfg)
        in_channels, head_planes = tuple(in_channels), tuple(head_planes)
        if not in_channels or not all(isinstance(c, int) and c > 0 for c in in_channels):
            raise ValueError('HRFormerClsNeck: in_channels must be positive ints, '
                             f'got {in_channels!r}')
        if len(head_planes) != len(in_channels):
            raise ValueError(f'HRFormerClsNeck: need one head_planes entry per input branch, got '
                             f'{len(head_planes)} for {len(in_channels)} branches')
        self.in_channels = in_channels
        self.out_channels = out_channels
        widths = [p * Bottleneck.expansion for p in head_planes]

        # nn.Sequential of one block: the official ``_make_layer`` output, hence the ``.0.`` in
        # ``incre_modules.{i}.0.conv1.weight``.
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(c, p, norm_cfg, groups=p))
            for c, p in zip(in_channels, head_planes))
        self.downsamp_modules = nn.ModuleList(
            ConvNormSequential(
                nn.Conv2d(c_in, c_in, 3, stride=2, padding=1, groups=c_in),
                build_norm(norm_cfg, c_in),
                nn.Conv2d(c_in, c_out, 1),
                build_norm(norm_cfg, c_out),
                nn.ReLU(),
            ) for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.final_layer = ConvNormSequential(
            nn.Conv2d(widths[-1], out_channels, 1), build_norm(norm_cfg, out_channels), nn.ReLU())

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """
        Args:
            inputs (Sequence[Tensor]): The backbone's maps, (B, in_channels[i], H_i, W_i), highest
                resolution first; H_{i+1} = ceil(H_i / 2) (the stride-2 downsample's output size).

        Returns:
            tuple[Tensor]: One (B, out_channels) feature, as MMPretrain necks return.
        """
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'HRFormerClsNeck: expected {len(self.in_channels)} maps, '
                             f'got {len(inputs)}')
        y = self.incre_modules[0](inputs[0])
        for i, downsample in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](inputs[i + 1]) + downsample(y)
        y = self.final_layer(y)
        return (y.mean(dim=(2, 3)), )
