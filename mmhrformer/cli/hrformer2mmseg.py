"""Convert official HRFormer (cls / seg / pose) or MMPose 1.x HRFormer checkpoints to mmhrformer.

    hrformer2mmseg SRC DST [--full-classifier] [--window-size N] [--arch {tiny,small,base}]
                   [--unsafe-load]

(or ``python tools/model_converters/hrformer2mmseg.py ...`` from a clone).

The source layout is found from the keys (mapping rules: ``mmhrformer/checkpoint/layouts.py``):

- official cls (``{'model': ...}``): backbone weights for ``init_cfg=dict(type='Pretrained',
  checkpoint=DST)``; ``--full-classifier``: a whole MMPretrain ``ImageClassifier``.
- official seg (openseg OCRNet, ``module.backbone.*``): an MMSeg ``CascadeEncoderDecoder`` (FCNHead
  aux + OCRHead) for ``load_from``; head conv biases are folded exactly into the BN running means.
  Not fixable by weights, so the config must do it: ``align_corners=True`` on both heads, and for
  openseg's exact logits ``bgr_to_rgb=False`` (it fed BGR images with RGB-ordered mean / std).
- official pose (mmpose 0.x fork): an MMPose 1.x ``TopdownPoseEstimator``; the bias tables are
  dropped, the backbone needs ``with_rpe=False, upsample_mode='bilinear', out_indices=(0, )``.
- MMPose 1.x HRFormer (fused qkv): backbone weights, or a ``TopdownPoseEstimator`` with its head.

``--window-size N`` resizes every relative position bias table per head, bilinearly
(align_corners=False), as the official seg code did to fine-tune window-7 ImageNet weights with
windows 13 and 15 (MMPose 0.x and the MMSeg PR used bicubic instead).

DST is ``{'state_dict': ..., 'meta': ...}``; ``meta`` records the source layout and the backbone
settings the weights need (``arch``, ``window_size``, ``with_rpe``, ``upsample_mode``). The result
is loaded strictly into the real target model before it is written. On any problem: one line on
stderr naming it (and a few of the keys), exit status 2, and DST is not written.

Files are read with ``torch.load(weights_only=True)``. Training checkpoints of the official cls code
also pickle their yacs config (``'config'``), which that refuses: the tool then names the pickled
types; ``--unsafe-load`` reads such a file with full unpickling, which runs code from the file, so
only for files you trust. Optimizer and scheduler states are plain containers and load either way.
"""
import os
import sys
import tempfile
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, convert, read_checkpoint
from .args import ArgumentParser


def save(obj, dst: Path) -> None:
    """Writes beside DST, then renames: DST is either the whole result or untouched."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{dst.name}.', suffix='.tmp', dir=dst.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None) -> int:
    parser = ArgumentParser(
        prog='hrformer2mmseg', description=__doc__.splitlines()[0],
        epilog='Exit status 2 on bad input or a checkpoint that does not convert.')
    parser.add_argument('src', help='official or MMPose HRFormer checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--full-classifier', action='store_true',
                        help='official cls only: write the whole MMPretrain ImageClassifier '
                        '(backbone, HRFormerClsNeck, LinearClsHead) instead of the backbone')
    parser.add_argument('--window-size', type=int, metavar='N',
                        help='resize every relative position bias table for window N (per head, '
                        'bilinear, as the official seg code did for windows 13 / 15)')
    parser.add_argument('--arch', choices=['tiny', 'small', 'base', 't', 's', 'b'],
                        help='fail unless the checkpoint holds this arch')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='unpickle arbitrary objects (runs code from SRC: trusted files only)')
    args = parser.parse_args(argv)
    if args.window_size is not None and args.window_size < 1:
        parser.error('--window-size must be a positive int')
    try:
        state, meta = convert(read_checkpoint(args.src, args.unsafe_load), args.full_classifier,
                              args.window_size, args.arch)
        save({'state_dict': state, 'meta': meta}, Path(args.dst))
    except CheckpointError as err:
        print(f'hrformer2mmseg: error: {err}', file=sys.stderr)
        return 2
    params = sum(v.numel() for k, v in state.items()
                 if v.is_floating_point() and not k.endswith(('running_mean', 'running_var')))
    dropped = ', '.join(f'{n} {reason}' for reason, n in meta['dropped'].items()) or 'none'
    print(f'layout: {meta["source_layout"]} -> {meta["target"]}')
    print(f'keys: {meta["source_keys"]} read, {meta["output_keys"]} written; dropped: {dropped}')
    print(f'params: {params / 1e6:.3f}M')
    settings = meta['model_settings'].items()
    print('backbone settings: ' + ', '.join(f'{k}={v!r}' for k, v in settings))
    if meta.get('data_preprocessor'):
        print('data preprocessor: ' + ', '.join(f'{k}={v!r}'
                                                for k, v in meta['data_preprocessor'].items()))
    for note in meta['notes']:
        print(f'note: {note}')
    print(f'saved {args.dst}')
    return 0

