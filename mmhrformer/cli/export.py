"""Export a trained config + checkpoint to an ONNX file that onnxruntime verifies.

    hrformer-export CONFIG CHECKPOINT OUT.onnx [--shape H W] [--dynamic] [--batch N]
                    [--opset N] [--argmax] [--cfg-options KEY=VALUE ...]

(or ``python tools/deployment/pytorch2onnx.py ...`` from a clone). The config's ``default_scope``
picks the host: segmentation (MMSeg) outputs the logits at the input size (``--argmax``: the label
map), pose (MMPose, top-down heatmap) the heatmaps (with the config's flip test), classification
(MMPretrain) the class scores (softmax). The input is the image batch as the host's data
preprocessor receives it: (N, 3, H, W) float32, pixel values 0-255, BGR as ``mmcv.imread`` loads;
the graph normalises and swaps channels as the config says. ``--dynamic`` leaves batch, height and
width free; without it every size in the graph is a constant. ``--cfg-options`` changes the config
as in every OpenMMLab tool (``model.test_cfg.flip_test=False``: the shipped pose configs export
with flip test, which doubles the cost). The file's ``metadata_props`` hold the input / output
contract and the class or keypoint names; they are printed. The file is then run in onnxruntime at the export size (and,
with ``--dynamic``, at a second, odd size and batch) and compared with PyTorch: beyond float32
rounding the export fails. On any problem: one line on stderr, exit status 2, no file written.
See docs/deployment.md.
"""
import sys
from typing import Dict

from ..apis import HostError
from ..checkpoint import CheckpointError
from .args import ArgumentParser, CfgOptions


def summary(props: Dict) -> str:
    """What the written file holds, for people: contract, labels, checks."""
    inp, out = props['input'], props['output']
    pre = props['preprocessing']
    labels = props['labels']
    shown = ' | '.join(labels[:8]) + (f' | ... ({len(labels)} in all)' if len(labels) > 8 else '')
    lines = [
        f'task: {props["task"]} ({props["host"]})',
        f'input: {inp["name"]} {shape(inp["shape"])} {inp["dtype"]}: {inp["meaning"]}',
        f'preprocessing in the graph: {"BGR -> RGB, " if pre["swap_rb"] else ""}'
        f'(x - {rounded(pre["mean"])}) / {rounded(pre["std"])}',
        f'output: {out["name"]} {shape(out["shape"])} {out["dtype"]}: {out["meaning"]}',
        f'{"keypoints" if props["host"] == "mmpose" else "classes"}: {shown or "(none known)"}',
        f'opset {props["opset"]}; ops: ' + ', '.join(f'{k} {v}' for k, v in
                                                     props['op_types'].items()),
        'TensorRT 10 operator list: ' + ('all ops listed' if not props['tensorrt10_problems']
                                        else '; '.join(props['tensorrt10_problems'])),
    ]
    for check in props['verified']:
        at = 'x'.join(map(str, check['shape']))
        if 'max_abs_diff' in check:
            lines.append(f'onnxruntime vs PyTorch at {at}: largest difference '
                         f'{check["max_abs_diff"]:.2g} (outputs up to {check["max_abs"]:.3g}, '
                         f'allowed {check["allowed"]:.2g})')
        else:
            lines.append(f'onnxruntime vs PyTorch at {at}: {check["pixels_differing"]} pixels '
                         f'labelled differently (ties within {check["at_ties_within"]:.2g})')
    return '\n'.join(lines)


def shape(dims) -> str:
    return '(' + ', '.join(map(str, dims)) + ')'


def rounded(values) -> str:
    return '[' + ', '.join(f'{v:g}' for v in values) + ']'


def main(argv=None) -> int:
    from ..deploy.onnx_export import DEFAULT_OPSET, ExportError, export_onnx
    from ..deploy.onnx_runtime import OnnxRuntimeError
    parser = ArgumentParser(prog='hrformer-export', description=__doc__.splitlines()[0],
                            epilog='Exit status 2 on bad input or a file that fails its checks.')
    parser.add_argument('config', help='a config of this package, or your own on the same hosts')
    parser.add_argument('checkpoint', help='trained or converted checkpoint of that config')
    parser.add_argument('out', help='the ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: the config\'s crop / input size)')
    parser.add_argument('--dynamic', action='store_true',
                        help='batch, height and width free in the file')
    parser.add_argument('--batch', type=int, default=1, help='batch of the export (default 1)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--argmax', action='store_true',
                        help='segmentation only: output the label map instead of the logits')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptions, metavar='KEY=VALUE',
                        help='override config settings, as OpenMMLab\'s tools: e.g. '
                        'model.test_cfg.flip_test=False')
    args = parser.parse_args(argv)
    try:
        props = export_onnx(args.config, args.checkpoint, args.out, args.shape, args.dynamic,
                            args.batch, args.opset, args.argmax, args.cfg_options)
    except (ExportError, HostError, CheckpointError, OnnxRuntimeError) as err:
        print(f'hrformer-export: error: {err}', file=sys.stderr)
        return 2
    print(summary(props))
    print(f'saved {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
