"""An exported file in onnxruntime, with what its metadata says about it."""
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from . import metadata


class OnnxRuntimeError(ValueError):
    """A file that onnxruntime cannot load, or an input the file cannot take; one line."""


class OnnxModel:
    """An ONNX file exported by :func:`~.onnx_export.export_onnx`, ready to run on the CPU.

    Args:
        path (str): The file.
        threads (int, optional): onnxruntime's intra-op threads (default: its own choice).
    """

    def __init__(self, path: str, threads: Optional[int] = None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=['CPUExecutionProvider'])
        except Exception as err:  # noqa: BLE001 - onnxruntime fails in many ways on foreign bytes
            first = (str(err).strip().splitlines() or [''])[0]
            raise OnnxRuntimeError(f'{path}: onnxruntime cannot load it ({first[:200]})') \
                from None
        self.path = Path(path)
        self.metadata: Dict = metadata.read(self.session)
        self.input = self.session.get_inputs()[0]

    @property
    def fixed_batch(self) -> Optional[int]:
        """The batch size the file requires, or None when it is free."""
        batch = self.input.shape[0]
        return batch if isinstance(batch, int) else None

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 pixels 0-255 as loaded -> the file's output for all N.

        A file exported with a fixed batch runs the images in chunks of that batch (the last
        chunk padded with zeros, whose results are dropped).
        """
        images = np.ascontiguousarray(images, dtype=np.float32)
        fixed = self.input.shape[2:]
        if all(isinstance(s, int) for s in fixed) and tuple(images.shape[2:]) != tuple(fixed):
            raise OnnxRuntimeError(
                f'{self.path.name} takes {fixed[0]}x{fixed[1]} inputs only, not '
                f'{images.shape[2]}x{images.shape[3]}; export with --dynamic for any size')
        step = self.fixed_batch or len(images)
        outputs = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            short = step - len(chunk)
            if short:
                chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), chunk.dtype)])
            out = self.session.run(None, {self.input.name: chunk})[0]
            outputs.append(out[:len(out) - short])
        return np.concatenate(outputs)
