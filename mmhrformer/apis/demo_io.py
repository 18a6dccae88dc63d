"""The demo's images in and pictures out, shared by the demo on checkpoints (``cli/demo.py``) and
on exported files (``deploy/onnx_demo.py``), so that both read, skip and draw alike."""
import time
from pathlib import Path
from typing import Callable, List

import numpy as np

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class DemoError(RuntimeError):
    """Bad input to the demo; the message names it."""


def list_images(path: str) -> List[Path]:
    """The image, or the images of a folder (sorted), by suffix."""
    p = Path(path)
    if p.is_dir():
        images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DemoError(f'{path}: no images ({", ".join(IMAGE_SUFFIXES)}) in this folder')
        return images
    if not p.is_file():
        raise DemoError(f'{path}: no such image or folder')
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise DemoError(f'{path}: not an image file (expected one of {", ".join(IMAGE_SUFFIXES)})')
    return [p]


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR, as the hosts' pipelines load images."""
    import mmcv
    try:
        image = mmcv.imread(str(path))
    except Exception as err:  # noqa: BLE001 - OpenCV / PIL fail in many ways on foreign bytes
        raise DemoError(f'{path}: cannot be read as an image ({err})') from None
    if image is None:  # OpenCV's answer to bytes it cannot decode
        raise DemoError(f'{path}: cannot be read as an image')
    return image


def for_each_image(images: List[Path], predict: Callable[[Path, np.ndarray], None]) -> List[str]:
    """``predict(path, image)`` for every readable image; returns one line per image that could
    not be read or predicted. ``predict`` writes its picture last, so a failure writes none."""
    failures = []
    for path in images:
        try:
            predict(path, read_image(path))
        except DemoError as err:
            failures.append(str(err))
        except Exception as err:  # noqa: BLE001 - one image failing must not stop the rest
            failures.append(f'{path}: prediction failed ({type(err).__name__}: {err})')
    return failures


def visualizer_of(cfg, **overrides):
    """The config's visualizer as a new instance. MMEngine keeps visualizers by name and hands
    back the first one built under a name, whatever the new settings: an earlier runner's OpenCV
    visualizer would otherwise replace the matplotlib one the pose demo asks for."""
    from mmengine.registry import VISUALIZERS
    name = f'hrformer-demo-{time.time_ns()}'
    return VISUALIZERS.build(dict(cfg.visualizer, name=name, **overrides))


def result_to_sample(result: dict):
    """MMPretrain's inferencer result as the ``DataSample`` its visualizer draws."""
    import torch
    from mmpretrain.structures import DataSample
    sample = DataSample().set_pred_score(torch.as_tensor(result['pred_scores']))
    return sample.set_pred_label(int(result['pred_label']))


def write(path: Path, rgb: np.ndarray) -> None:
    """Writes an (H, W, 3) RGB picture, making its folder."""
    import mmcv
    path.parent.mkdir(parents=True, exist_ok=True)
    mmcv.imwrite(np.ascontiguousarray(rgb[..., ::-1]), str(path))
