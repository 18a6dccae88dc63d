"""What the commands and the deployment share about running a config on images: which host a
config is for (``hosts``), and the demo's images in, pictures out and per-image loop
(``demo_io``), used alike by the demo on checkpoints (``cli/demo.py``) and on exported files
(``deploy/onnx_demo.py``)."""
from .demo_io import (DemoError, for_each_image, list_images, read_image, result_to_sample,
                      visualizer_of, write)
from .hosts import HostError, host_of, load_config

__all__ = [
    'DemoError', 'HostError', 'for_each_image', 'host_of', 'list_images', 'load_config', 'read_image',
    'result_to_sample', 'visualizer_of', 'write'
]
