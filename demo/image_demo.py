"""Run a shipped config and a checkpoint on your own images: ``hrformer-demo`` from a clone.

    python demo/image_demo.py IMAGE_OR_FOLDER CONFIG CHECKPOINT [--out-dir DIR] [--bboxes ...]

See ``mmhrformer/cli/demo.py`` (``--help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone without installing

from mmhrformer.cli.demo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
