"""A stand-in for a ``transformers`` release that MMPretrain 1.2 cannot use, as the GPU machine's
transformers 5.17: installed as far as package metadata goes (version 5.17 >= 4.28, so
MMPretrain's ``WITH_MULTIMODAL`` is true and ``mmpretrain.models`` imports its multimodal
models), but none of the names those import exist here. With the real 5.17 the import broke in
BLIP ("TypeError: NoneType takes no arguments"), here it breaks one module earlier ("cannot
import name 'AutoConfig'"): the same failure, MMPretrain's model registry does not import.
Put on the path by the GPU check's dry run only (tools/device/run.sh --quick,
tests/test_gpu_check.py)."""
__version__ = '5.17.0'
