"""The ResNet bottleneck (expansion 4) shared by the backbone's stage 1 and the cls neck."""
import torch
from torch import nn

from .conv_bn import ConvNormSequential, conv_bn
from .norm import build_norm


class Bottleneck(nn.Module):
    """``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))``.

    The shortcut is a 1x1 conv + BN (named ``downsample``, ``0`` conv and ``1`` BN, as in the
    official checkpoints, though it only projects channels) whenever the channels change, the
    identity otherwise. No conv has a bias (each feeds a BN).

    Args:
        in_channels (int): Input channels C_in.
        planes (int): Bottleneck width; the output has ``planes * 4`` channels.
        norm_cfg (dict): Norm layer config.
        groups (int): Groups of the 3x3 conv: 1 in the backbone's stage 1, ``planes`` (depthwise)
            in the official classification head's "BottleneckDWP". Default: 1.
    """
    expansion = 4

    def __init__(self, in_channels: int, planes: int, norm_cfg: dict, groups: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = build_norm(norm_cfg, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, groups=groups, bias=False)
        self.bn2 = build_norm(norm_cfg, planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = build_norm(norm_cfg, out_channels)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = ConvNormSequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                build_norm(norm_cfg, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, planes * 4, H, W)."""
        out = conv_bn(x, self.conv1, self.bn1, 'relu')
        out = conv_bn(out, self.conv2, self.bn2, 'relu')
        identity = x if self.downsample is None else self.downsample(x)
        return conv_bn(out, self.conv3, self.bn3, 'relu', residual=identity)
