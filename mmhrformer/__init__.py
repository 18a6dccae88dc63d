"""HRFormer for OpenMMLab."""
