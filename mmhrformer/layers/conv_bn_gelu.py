"""The FFN's conv -> BN -> GELU chain in training, keeping only the conv outputs for backward.

:func:`conv_bn_gelu_chain` is the entry point: at inference it folds each BN into its conv
(:func:`~mmhrformer.layers.conv_bn.conv_bn`); in training with ``nn.BatchNorm2d`` or
``nn.SyncBatchNorm`` it runs :class:`ConvBNGELUChain`, which recomputes the elementwise BN + GELU
in the backward pass instead of keeping their outputs; exported, it runs over (B, H, W, C) tokens
at a fixed size (:func:`token_layout_chain`).
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .batch_count import is_owned, momentum_of
from .config import free_sizes, is_exporting
from .conv_bn import conv_bn, elementwise, fold_bn, foldable
from .sync_batch_norm import sync_group, synced_batch_norm_backward, synced_batch_stats


class ConvBNGELUChain(torch.autograd.Function):
    """Training-mode ``gelu(batch_norm(conv(x)))``, stage after stage, keeping only conv outputs.

    Autograd would keep, per stage, the conv's input (the previous GELU's output), the conv's
    output (the norm's input) and the norm's output (the GELU's input). This keeps the chain's
    input and each conv's output; the backward pass recomputes norm + GELU from them, which is
    elementwise work. In the FFN (C -> 4C -> 4C -> C) that is 10 C kept per token instead of 18 C.

    ``stages`` holds per stage ``(stride, padding, groups, momentum, eps, process_group)``, the
    group set for a SyncBatchNorm whose statistics span several processes; ``params`` per stage
    the conv weight and bias (or None), the norm weight and bias, and its running mean and
    variance, which the forward pass updates as the norm module would.
    """

    @staticmethod
    def forward(ctx, x, stages, *params):
        conv_outs, means, invstds, counts = [], [], [], []
        h = x
        for i, (stride, padding, groups, momentum, eps, group) in enumerate(stages):
            weight, bias, norm_weight, norm_bias, running_mean, running_var = params[6 * i:][:6]
            z = F.conv2d(h, weight, bias, stride, padding, 1, groups)
            if group is None:
                y, mean, invstd = torch.native_batch_norm(z, norm_weight, norm_bias, running_mean,
                                                          running_var, True, momentum, eps)
                count = None
            else:
                mean, invstd, count = synced_batch_stats(z, running_mean, running_var, momentum,
                                                          eps, group)
                scale = invstd * norm_weight
                y = _batch_norm_apply(z, scale, torch.addcmul(norm_bias, mean, scale, value=-1))
            h = elementwise(F.gelu, y)
            conv_outs.append(z)
            means.append(mean)
            invstds.append(invstd)
            counts.append(count)
        ctx.stages, ctx.counts = stages, counts
        ctx.save_for_backward(x, *conv_outs, *means, *invstds, *params)
        return h

    @staticmethod
    def backward(ctx, grad):
        n = len(ctx.stages)
        saved = ctx.saved_tensors
        x, conv_outs = saved[0], saved[1:n + 1]
        means, invstds = saved[n + 1:2 * n + 1], saved[2 * n + 1:3 * n + 1]
        params = saved[3 * n + 1:]
        needs = ctx.needs_input_grad[2:]  # per parameter, after x and stages
        grads = [None] * len(params)
        # The norms' per-channel affine maps, all stages in two (multi-tensor) ops instead of
        # three each: scale = invstd * weight, shift = bias - mean * scale.
        scales = torch._foreach_mul(list(invstds), [params[6 * i + 2] for i in range(n)])
        shifts = torch._foreach_addcmul([params[6 * i + 3] for i in range(n)], list(means), scales,
                                        value=-1)
        norm_out = None  # the recomputed norm output of the stage being differentiated
        for i in reversed(range(n)):
            stride, padding, groups, _, eps, group = ctx.stages[i]
            weight, bias, norm_weight = params[6 * i:6 * i + 3]
            z, mean, invstd = conv_outs[i], means[i], invstds[i]
            y = norm_out if norm_out is not None else _batch_norm_apply(z, scales[i], shifts[i])
            grad_y = elementwise(torch.ops.aten.gelu_backward, grad, y.to(grad.dtype))
            if group is None:
                grad_z, grad_nw, grad_nb = torch.ops.aten.native_batch_norm_backward(
                    grad_y, z, norm_weight, None, None, mean, invstd, True, eps,
                    [True, needs[6 * i + 2], needs[6 * i + 3]])
            else:
                grad_z, grad_nw, grad_nb = synced_batch_norm_backward(
                    grad_y, z, mean, invstd, norm_weight, ctx.counts[i], group)
            grads[6 * i + 2], grads[6 * i + 3] = grad_nw, grad_nb
            if i > 0:
                norm_out = _batch_norm_apply(conv_outs[i - 1], scales[i - 1], shifts[i - 1])
                conv_in = elementwise(F.gelu, norm_out).to(z.dtype)
            else:
                conv_in = x.to(z.dtype)  # autocast ran the first conv in z's dtype
            grad, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_z, conv_in, weight.to(z.dtype), None if bias is None else [bias.shape[0]],
                [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], groups,
                [i > 0 or ctx.needs_input_grad[0], needs[6 * i],
                 bias is not None and needs[6 * i + 1]])
            grads[6 * i] = None if grad_w is None else grad_w.to(weight.dtype)
            grads[6 * i + 1] = None if grad_b is None else grad_b.to(bias.dtype)
        grad_x = None if grad is None else grad.to(x.dtype)
        return (grad_x, None, *grads)


def _batch_norm_apply(z, scale, shift) -> torch.Tensor:
    """The training-mode norm output ``z * scale + shift`` (per channel), in one pass."""
    shape = (1, -1, 1, 1)
    return torch.addcmul(shift.to(z.dtype).view(shape), z, scale.to(z.dtype).view(shape))


def conv_bn_gelu_chain(x: torch.Tensor, pairs: Sequence[Tuple[nn.Conv2d, nn.Module]],
                       recompute: bool = True) -> torch.Tensor:
    """``gelu(norm(conv(x)))`` for each (conv, norm) pair in turn.

    At inference every norm is folded into its conv. In training with ``recompute`` and
    ``nn.BatchNorm2d`` / ``nn.SyncBatchNorm`` norms, the chain runs as :class:`ConvBNGELUChain`,
    which keeps about half the activations for 7 more small ops per chain in the backward pass;
    without ``recompute``, as separate autograd ops. The convs have square stride and padding
    and no dilation (the FFN's).
    """
    if recompute and torch.is_grad_enabled() and all(_chainable(norm) for _, norm in pairs):
        # Norms their model does not count (SyncBatchNorm): one multi-tensor op counts them all.
        counters = [norm.num_batches_tracked for _, norm in pairs if not is_owned(norm)]
        if counters:
            torch._foreach_add_(counters, 1)
        stages, params = [], []
        for conv, norm in pairs:
            stages.append((conv.stride[0], conv.padding[0], conv.groups, momentum_of(norm),
                           norm.eps, sync_group(norm)))
            params += [conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean,
                       norm.running_var]
        return ConvBNGELUChain.apply(x, tuple(stages), *params)
    if is_exporting() and not free_sizes() and all(foldable(norm) for _, norm in pairs):
        return token_layout_chain(x, pairs)
    for conv, norm in pairs:
        x = conv_bn(x, conv, norm, 'gelu')
    return x


def token_layout_chain(x: torch.Tensor,
                       pairs: Sequence[Tuple[nn.Conv2d, nn.Module]]) -> torch.Tensor:
    """The inference chain (BNs folded) computed over (B, H, W, C) tokens: the exported form.

    onnxruntime runs convs in a blocked channel layout and no GELU in it, so an NCHW chain costs
    a reorder out of and back into that layout around every GELU (a third of HRFormer-S's time at
    256x192 went to them and to the GELUs on the reordered copies). Over tokens, a 1x1 conv is a
    MatMul over the channels and each GELU follows its MatMul; only the depthwise conv sees
    NCHW, one reorder in and one out, and the transposes between the block's tokens and this
    chain's NCHW ends cancel in the exporter. Fixed-size exports only: OpenVINO runs these 4-d
    MatMuls over free sizes through its dynamic-shape path about 1.5x slower than the convs.
    """
    tokens = x.permute(0, 2, 3, 1)
    for conv, norm in pairs:
        weight, bias = fold_bn(conv, norm)
        if conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1 and not any(
                conv.padding):
            tokens = F.linear(tokens, weight.flatten(1), bias)
        else:
            tokens = F.conv2d(tokens.permute(0, 3, 1, 2), weight, bias, conv.stride, conv.padding,
                              conv.dilation, conv.groups).permute(0, 2, 3, 1)
        tokens = F.gelu(tokens)
    return tokens.permute(0, 3, 1, 2)


def _chainable(norm: nn.Module) -> bool:
    return (type(norm) in (nn.BatchNorm2d, nn.SyncBatchNorm) and norm.training and norm.affine
            and norm.track_running_stats)
