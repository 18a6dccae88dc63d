"""Export a trained config + checkpoint to an ONNX file that onnxruntime verifies.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--dynamic]
                                            [--batch N] [--opset N] [--argmax]

The same tool as the console script ``hrformer-export`` that ``pip install`` puts on the PATH;
see ``mmhrformer/cli/export.py`` (``--help``) and docs/deployment.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a clone without installing

from mmhrformer.cli.export import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
