"""Checkpoint layouts (official cls / seg / pose, MMPose 1.x) and their conversion.

``layouts`` holds every naming rule once, as a table from layout to its mapping functions;
``convert`` runs them, accounts for every key and checks the result against the real target model;
``safe_globals`` lets ``torch.load(weights_only=True)`` read MMEngine's own training checkpoints.
"""
from .convert import build_in_host, convert, ocrnet_cfg
from .safe_globals import allow_mmengine_checkpoints
from .layouts import (LAYOUTS, ConversionError, convert_official_backbone,
                      convert_official_classifier, detect_layout, mmpose_backbone_cfg,
                      mmpose_to_ours, name_keys)

__all__ = [
    'LAYOUTS', 'ConversionError', 'allow_mmengine_checkpoints', 'build_in_host', 'convert', 'convert_official_backbone',
    'convert_official_classifier', 'detect_layout', 'mmpose_backbone_cfg', 'mmpose_to_ours',
    'name_keys', 'ocrnet_cfg'
]
