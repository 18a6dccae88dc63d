"""Building blocks and kernels shared by the models: no architecture lives here.

==========================  ================================================================
``config``                  fast-path switches (``set_fused_kernels``), export / capture detection,
                            fixed-size exports (``fixed_size_export``, ``shape_of``)
``batch_count``             training BatchNorms counted once per model forward, not per norm
``conv_bn``                 conv + norm (+ residual, activation), BN folded at inference
``onednn``                  oneDNN's fused conv kernels (CPU inference)
``attention``               scaled dot-product attention, a faster path for a learned mask
``derived_weights``         weights derived from parameters, kept between inference calls
``conv_bn_gelu``            the FFN's conv-BN-GELU chain, memory-lean in training
``crop``                    cropping padded tokens in one copy
``sync_batch_norm``         SyncBatchNorm statistics and gradients for that chain
``bottleneck``              the ResNet bottleneck (backbone stage 1, cls neck)
``relative_position``       relative position bias index and window resizing
``joined_params``           parameters joined by one op per module for a training step
``norm``, ``drop_path``     norm layers from configs; stochastic depth
==========================  ================================================================
"""
from .attention import attention
from .batch_count import count_batches, own_batch_counts
from .bottleneck import Bottleneck
from .config import (fixed_size_export, free_sizes, is_capturing, is_exporting, set_fused_kernels,
                     shape_of, use_fused_kernels)
from .conv_bn import ConvNormSequential, conv_bn, fold_bn
from .conv_bn_gelu import ConvBNGELUChain, conv_bn_gelu_chain
from .crop import crop_tokens
from .derived_weights import derived
from .drop_path import DropPath
from .joined_params import gather_position_biases, joined
from .norm import build_norm
from .relative_position import (joint_position_index, relative_position_index,
                                resize_rpe_table)

__all__ = [
    'Bottleneck', 'ConvBNGELUChain', 'ConvNormSequential', 'DropPath', 'attention', 'build_norm',
    'conv_bn', 'conv_bn_gelu_chain', 'count_batches', 'crop_tokens', 'derived',
    'fixed_size_export', 'fold_bn', 'free_sizes', 'gather_position_biases', 'is_capturing',
    'is_exporting', 'joined', 'joint_position_index', 'own_batch_counts',
    'relative_position_index', 'resize_rpe_table', 'set_fused_kernels', 'shape_of',
    'use_fused_kernels'
]
