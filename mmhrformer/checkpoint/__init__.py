"""Checkpoint layouts (official cls / seg / pose, MMPose 1.x, this package's) and their mapping.

``layouts`` holds every naming rule once, as a table from layout to its mapping functions;
``convert`` runs them offline, accounts for every key and checks the result against the real
target model; ``loading`` runs the same rules while a model loads weights (``init_cfg``,
``load_from``, ``load_state_dict``) and stops a load that leaves the backbone incomplete;
``checked`` loads whole models for the commands, every weight set or one clear error;
``reading`` reads files with one-line errors; ``safe_globals`` lets
``torch.load(weights_only=True)`` read MMEngine's own training checkpoints.

This package sits above the models, not below: converting is checked against the real target
model and the commands' loading builds whole host models, so it needs the model classes, while
the architecture needs nothing of layouts. It plugs its mapping into the backbone from above
(:func:`install_layout_loading`, through ``HRFormer.weights_adapter``).
"""
from .checked import check_against_config, load_checked
from .convert import build_in_host, convert, ocrnet_cfg
from .layouts import (LAYOUTS, CheckpointError, convert_official_backbone,
                      convert_official_classifier, detect_layout, mmpose_backbone_cfg,
                      mmpose_to_ours, name_keys)
from .loading import install as install_layout_loading
from .loading import load_pretrained
from .reading import read_checkpoint
from .safe_globals import allow_mmengine_checkpoints

__all__ = [
    'LAYOUTS', 'CheckpointError', 'allow_mmengine_checkpoints', 'build_in_host',
    'check_against_config', 'convert', 'convert_official_backbone', 'convert_official_classifier',
    'detect_layout', 'install_layout_loading', 'load_checked', 'load_pretrained',
    'mmpose_backbone_cfg', 'mmpose_to_ours', 'name_keys', 'ocrnet_cfg', 'read_checkpoint'
]
