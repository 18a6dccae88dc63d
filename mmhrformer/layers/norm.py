"""Norm layers from MMCV-style configs."""
import torch.nn as nn


def build_norm(norm_cfg: dict, num_features: int) -> nn.Module:
    """Builds a 2D norm layer from an MMCV-style ``norm_cfg`` (BN, SyncBN, GN, ...)."""
    from mmengine.registry import MODELS
    cfg = dict(norm_cfg)
    requires_grad = cfg.pop('requires_grad', True)
    layer_type = cfg.pop('type')
    if layer_type in ('BN', 'BN2d'):
        layer = nn.BatchNorm2d(num_features, **cfg)
    elif layer_type == 'SyncBN':
        layer = nn.SyncBatchNorm(num_features, **cfg)
    elif layer_type == 'GN':
        layer = nn.GroupNorm(num_channels=num_features, **cfg)
    else:
        norm_cls = MODELS.get(layer_type)
        if norm_cls is None:
            raise KeyError(f'HRFormer: unknown norm type {layer_type!r} in norm_cfg')
        layer = norm_cls(num_features, **cfg)
    for p in layer.parameters():
        p.requires_grad = requires_grad
    return layer
