"""Conv followed by a norm (and optionally a residual add and an activation), folded at inference.

The reference computation is ``activation(norm(conv(x)) + residual)``. In eval mode a BatchNorm is
an affine map per channel, so it folds into the conv's weight and bias (exact up to float32
rounding); on a CPU the activation and the residual add then run inside the conv's oneDNN kernel
(:mod:`mmhrformer.layers.onednn`), one pass over the output instead of up to three.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import onednn
from .batch_count import batch_norm
from .config import is_exporting
from .derived_weights import derived

ACTIVATIONS = {'relu': F.relu, 'gelu': F.gelu}


def elementwise(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*tensors)`` for an elementwise ``fn``, run over 1-d views where all are channels_last.

    ATen's GELU kernels take about 1.7x as long over a 4-d channels_last tensor as over the same
    memory seen as 1-d (measured at the FFN's shapes); the result is the same. Exported graphs
    get the plain op (the views would be Transpose and Reshape nodes).
    """
    first = tensors[0]
    if not is_exporting() and first.dim() == 4 and not first.is_contiguous() and all(
            t.shape == first.shape and t.is_contiguous(memory_format=torch.channels_last)
            for t in tensors):
        n, c, h, w = first.shape
        out = fn(*(t.permute(0, 2, 3, 1).reshape(-1) for t in tensors))
        return out.view(n, h, w, c).permute(0, 3, 1, 2)
    return fn(*tensors)


def fold_bn(conv: nn.Conv2d, norm: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the single conv equal to ``norm(conv(x))`` with running statistics."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = norm.bias - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return weight, bias


def foldable(norm: nn.Module) -> bool:
    """Whether ``norm`` is a BatchNorm in eval mode with running statistics (an affine map per
    channel, which :func:`fold_bn` folds into the conv before it)."""
    return isinstance(norm, _BatchNorm) and not norm.training and norm.running_var is not None


def conv_bn(x: torch.Tensor, conv: nn.Conv2d, norm: nn.Module, activation: Optional[str] = None,
            residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``activation(norm(conv(x)) + residual)``, the activation (``'relu'``, ``'gelu'``) and the
    residual optional. Training-mode and non-BatchNorm norms run as written."""
    if not foldable(norm):
        out = batch_norm(norm, conv(x))
    else:
        weight, bias = derived(conv, 'folded_bn', (conv.weight, conv.bias, norm.weight,
                                                   norm.bias, norm.running_mean, norm.running_var),
                               lambda: fold_bn(conv, norm), norm.eps)
        if onednn.can_fuse(x, weight, activation, residual):
            return onednn.fused_conv(x, conv, weight, bias, activation, residual)
        out = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    if residual is not None:
        out = out + residual
    return out if activation is None else elementwise(ACTIVATIONS[activation], out)


class ConvNormSequential(nn.Sequential):
    """An ``nn.Sequential`` whose conv -> norm (-> ReLU) runs go through :func:`conv_bn`.

    Keeps the official positional names (``0`` conv, ``1`` BN, ...) while folding and fusing at
    inference.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        i = 0
        while i < len(layers):
            if isinstance(layers[i], nn.Conv2d) and i + 1 < len(layers) and isinstance(
                    layers[i + 1], (_BatchNorm, nn.GroupNorm)):
                relu = i + 2 < len(layers) and isinstance(layers[i + 2], nn.ReLU)
                x = conv_bn(x, layers[i], layers[i + 1], 'relu' if relu else None)
                i += 3 if relu else 2
            else:
                x = layers[i](x)
                i += 1
        return x
