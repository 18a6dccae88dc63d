"""oneDNN's fused convolution kernels on the CPU: conv + activation (+ residual add) in one pass.

These are the ops PyTorch's inductor emits for a CPU conv followed by pointwise work. Used at
inference only, after BatchNorm folding (:func:`mmhrformer.layers.conv_bn`): the ops have no
autograd formula, autocast does not see them, and exporters know nothing of them.
"""
from typing import Optional

import torch
from torch import nn

from .config import is_capturing, use_fused_kernels

# Absent from builds of torch without oneDNN.
AVAILABLE = hasattr(torch.ops.mkldnn, '_convolution_pointwise')


def can_fuse(x: torch.Tensor, weight: torch.Tensor, activation: Optional[str],
             residual: Optional[torch.Tensor]) -> bool:
    """Whether this conv may run as a fused kernel: switched on, plain eager fp32 CPU inference.

    The conditions in order: the switch and the kernels exist; a 4-d fp32 CPU tensor outside
    autocast; no gradient is needed; nothing captures the ops (export, compile, tracing,
    dispatch-mode tools). oneDNN's conv + add kernel takes no GELU after the add.
    """
    return (use_fused_kernels() and AVAILABLE and torch.backends.mkldnn.enabled
            and x.device.type == 'cpu' and x.dtype == torch.float32 and x.dim() == 4
            and not torch.is_autocast_enabled('cpu')
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not is_capturing()
            and not (residual is not None and activation == 'gelu'))


def fused_conv(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor,
               activation: Optional[str] = None,
               residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``activation(conv2d(x, weight, bias) + residual)`` with ``conv``'s geometry, one kernel."""
    args = (weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    # GELU's algorithm 'none' is the exact (erf) form, as F.gelu's default.
    algorithm = 'none' if activation == 'gelu' else ''
    if residual is None:
        return torch.ops.mkldnn._convolution_pointwise(x, *args, activation or 'none', [],
                                                       algorithm)
    return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, *args, 'add', None,
                                                          activation, [], algorithm)
