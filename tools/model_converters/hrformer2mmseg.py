"""Convert official HRFormer checkpoints (cls / seg / pose) or MMPose 1.x HRFormer weights to mmhrformer.

    python tools/model_converters/hrformer2mmseg.py SRC DST [--full-classifier] [--window-size N]

The source layout is found from the keys; the output is loaded strictly into the real target model
before it is written, and ``meta`` records the layout and the backbone settings the weights need
(``with_rpe``, ``upsample_mode``, ``arch``, ``window_size``). Mapping rules: ``mmhrformer/convert.py``.
On any problem: one line on stderr, exit status 2, and DST is not written.
"""
import argparse
import os
import pickle
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmhrformer.convert import ConversionError, convert  # noqa: E402


def load(src: str, unsafe: bool):
    if not os.path.isfile(src):
        raise ConversionError(f'{src}: no such file')
    try:
        return torch.load(src, map_location='cpu', weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if 'weights_only' in str(err) or 'Weights only load failed' in str(err):
            raise ConversionError(
                f'{src} holds pickled Python objects besides tensors, which weights_only=True '
                'refuses to load; if you trust the file, add --unsafe-load') from None
        raise ConversionError(f'{src} is not a PyTorch checkpoint ({err})') from None
    except Exception as err:  # torch.load fails in many ways on foreign or cut-off bytes
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ''
        raise ConversionError(f'{src} is truncated, corrupt or not a PyTorch checkpoint '
                              f'({type(err).__name__}: {first})') from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official or MMPose HRFormer checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--full-classifier', action='store_true',
                        help='official cls only: write the whole MMPretrain ImageClassifier '
                        '(backbone, HRFormerClsNeck, LinearClsHead) instead of the backbone')
    parser.add_argument('--window-size', type=int,
                        help='resize every relative position bias table for this window '
                        '(per head, bilinear, as the official seg code did for w13 / w15)')
    parser.add_argument('--arch', choices=['tiny', 'small', 'base'],
                        help='fail unless the checkpoint holds this arch')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='unpickle arbitrary objects (only for files you trust)')
    args = parser.parse_args(argv)
    if args.window_size is not None and args.window_size < 1:
        parser.error('--window-size must be a positive int')
    try:
        state, meta = convert(load(args.src, args.unsafe_load), args.full_classifier,
                              args.window_size, args.arch)
    except ConversionError as err:
        print(f'hrformer2mmseg: error: {err}', file=sys.stderr)
        return 2
    dst = Path(args.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Written beside DST, then renamed: DST is either the whole result or absent.
    fd, tmp = tempfile.mkstemp(prefix=f'.{dst.name}.', dir=dst.parent)
    os.close(fd)
    try:
        torch.save({'state_dict': state, 'meta': meta}, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    params = sum(v.numel() for k, v in state.items()
                 if v.is_floating_point() and not k.endswith(('running_mean', 'running_var')))
    print(f'layout: {meta["source_layout"]} -> {meta["target"]}')
    print(f'keys: {meta["source_keys"]} read, {meta["output_keys"]} written, dropped: '
          + (', '.join(f'{n} {k}' for k, n in meta['dropped'].items()) or 'none'))
    print(f'params: {params / 1e6:.3f}M; build the model with {meta["model_settings"]}')
    print(f'saved {dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
