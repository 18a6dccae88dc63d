"""SyncBatchNorm's statistics and input gradient across processes, for the fused FFN chain.

What ``nn.SyncBatchNorm`` computes, written out so that :class:`~mmhrformer.layers.conv_bn_gelu.
ConvBNGELUChain` can keep its own saved tensors: each process's mean and variance are gathered and
merged in the forward pass, the two gradient sums are all-reduced in the backward pass.
"""
import torch
import torch.distributed as dist
from torch import nn


def sync_group(norm: nn.Module):
    """The process group a SyncBatchNorm's statistics span, or None when they are local."""
    if not isinstance(norm, nn.SyncBatchNorm) or not dist.is_available() or not (
            dist.is_initialized()):
        return None
    group = norm.process_group or dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def synced_batch_stats(z, running_mean, running_var, momentum, eps, group):
    """Mean, inverse std and element count per channel over every process's batch.

    Each process's mean and variance are gathered and merged (parallel-variance formula), and the
    running statistics are updated with the unbiased variance, as ``nn.SyncBatchNorm`` does.
    """
    var, mean = torch.var_mean(z.float(), dim=(0, 2, 3), correction=0)
    channels = mean.numel()
    local = torch.cat([mean, var, mean.new_full((1, ), z.numel() // channels)])
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, local, group=group)
    gathered = torch.stack(gathered)
    means, variances, counts = gathered[:, :channels], gathered[:, channels:-1], gathered[:, -1:]
    total = counts.sum()
    mean = (means * counts).sum(0) / total
    var = ((variances + (means - mean)**2) * counts).sum(0) / total
    count = int(total.item())
    with torch.no_grad():
        running_mean.lerp_(mean.to(running_mean.dtype), momentum)
        unbiased = var * (count / max(count - 1, 1))
        running_var.lerp_(unbiased.to(running_var.dtype), momentum)
    return mean, torch.rsqrt(var + eps), count


def synced_batch_norm_backward(grad_y, z, mean, invstd, weight, count, group):
    """Gradients of a SyncBatchNorm's input (summed statistics over every process) and of its
    weight and bias (this process's share; data parallelism sums them as any parameter's)."""
    shape = (1, -1, 1, 1)
    grad_y, centred = grad_y.float(), z.float() - mean.view(shape)
    sum_dy = grad_y.sum((0, 2, 3))
    sum_dy_xmu = (grad_y * centred).sum((0, 2, 3))
    grad_weight, grad_bias = sum_dy_xmu * invstd, sum_dy.clone()
    sums = torch.cat([sum_dy, sum_dy_xmu])
    dist.all_reduce(sums, group=group)
    sum_dy, sum_dy_xmu = sums.chunk(2)
    grad_z = (grad_y - (sum_dy / count).view(shape) - centred *
              (invstd**2 * sum_dy_xmu / count).view(shape)) * (invstd * weight).view(shape)
    return grad_z.to(z.dtype), grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)
