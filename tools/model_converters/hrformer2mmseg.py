"""Convert official HRFormer (cls / seg / pose) or MMPose 1.x HRFormer checkpoints to mmhrformer.

    python tools/model_converters/hrformer2mmseg.py SRC DST [options]

The same tool as the console script ``hrformer2mmseg`` that ``pip install`` puts on the PATH; see
``mmhrformer/cli/hrformer2mmseg.py`` (``--help``) for the layouts and options.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a clone without installing

from mmhrformer.cli.hrformer2mmseg import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
