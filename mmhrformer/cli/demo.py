"""Run a shipped config and a checkpoint on your own images and write the pictures.

    hrformer-demo IMAGE_OR_FOLDER CONFIG CHECKPOINT [--out-dir DIR] [--device cpu]
                  [--bboxes X1,Y1,X2,Y2 ...] [--kpt-thr 0.3] [--topk 5]
                  [--cfg-options KEY=VALUE ...]

(or ``python demo/image_demo.py ...`` from a clone). The config's ``default_scope`` picks the
host and its inferencer: segmentation through ``MMSegInferencer`` (the class map blended over the
image), pose through MMPose (keypoints and skeleton drawn; the whole image is the person box
unless ``--bboxes`` gives boxes, so no detector is downloaded), classification through
MMPretrain's ``ImageClassificationInferencer`` (the top-k classes, printed and drawn). The
checkpoint is one this package's configs trained, or an official one converted by
``hrformer2mmseg`` (which stores the class names and palette of its data set). One picture per
image is written to ``--out-dir``; the predictions are printed.
"""
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..apis import (DemoError, HostError, for_each_image, host_of, list_images, load_config,
                    result_to_sample, visualizer_of, write)
from ..checkpoint import CheckpointError, check_against_config
from .args import ArgumentParser, CfgOptions


def parse_bboxes(values: Optional[List[str]]) -> Optional[np.ndarray]:
    if not values:
        return None
    boxes = []
    for value in values:
        try:
            x1, y1, x2, y2 = (float(v) for v in value.split(','))
        except ValueError:
            raise DemoError(f'--bboxes {value!r}: expected X1,Y1,X2,Y2') from None
        if x2 <= x1 or y2 <= y1:
            raise DemoError(f'--bboxes {value!r}: the box is empty (need X1 < X2, Y1 < Y2)')
        boxes.append((x1, y1, x2, y2))
    return np.array(boxes, dtype=np.float32)


def segment(images, config, checkpoint, out_dir: Path, device: str, meta: dict) -> List[str]:
    from mmseg.apis import MMSegInferencer

    from ..deploy.onnx_export import dataset_meta_of
    # MMSeg's inferencer names the classes of a checkpoint without dataset_meta as Cityscapes';
    # the config's data set knows them (as the exported files do).
    names = dataset_meta_of('mmseg', config, meta)
    known = {k: names[k] for k in ('classes', 'palette')} if names.get('palette') else {}
    inferencer = MMSegInferencer(model=config, weights=checkpoint, device=device, **known)
    if known:
        inferencer.model.dataset_meta = known
    classes = inferencer.model.dataset_meta['classes']

    def predict(path: Path, image: np.ndarray) -> None:
        result = inferencer(image, return_vis=True)
        labels, counts = np.unique(result['predictions'], return_counts=True)
        share = ', '.join(f'{classes[i]} {c / counts.sum():.0%}'
                          for i, c in sorted(zip(labels, counts), key=lambda t: -t[1])[:5])
        vis = result['visualization']  # one image: the picture itself, not a list
        write(out_dir / f'{path.stem}_seg.png', vis[0] if isinstance(vis, list) else vis)
        print(f'{path}: {share}')

    return for_each_image(images, predict)


def estimate_pose(images, config, checkpoint, out_dir: Path, device: str, bboxes,
                  kpt_thr: float) -> List[str]:
    # MMPose 1.3's Pose2DInferencer drops boxes given to it (it uses a detector or the whole
    # image), so boxes go through its inference_topdown API and visualizer instead.
    from mmpose.apis import inference_topdown, init_model
    from mmpose.structures import merge_data_samples
    model = init_model(config, checkpoint, device=device)
    # MMPose 1.3's OpenCV drawing calls int() on 1-element arrays, which numpy >= 2.3 refuses as
    # soon as a keypoint is confident enough to draw; its matplotlib backend draws the same.
    visualizer = visualizer_of(model.cfg, backend='matplotlib')
    visualizer.set_dataset_meta(model.dataset_meta)

    def predict(path: Path, image: np.ndarray) -> None:
        boxes = bboxes if bboxes is not None else np.array(
            [[0, 0, image.shape[1], image.shape[0]]], dtype=np.float32)
        result = merge_data_samples(inference_topdown(model, image, boxes))
        visualizer.add_datasample('pose', image[..., ::-1], data_sample=result, draw_gt=False,
                                  draw_bbox=True, kpt_thr=kpt_thr, show=False)
        write(out_dir / f'{path.stem}_pose.png', visualizer.get_image())
        scores = result.pred_instances.keypoint_scores
        print(f'{path}: {len(boxes)} person box(es), mean keypoint score {scores.mean():.2f}')

    return for_each_image(images, predict)


def classify(images, config, checkpoint, out_dir: Path, device: str, topk: int) -> List[str]:
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.visualization import UniversalVisualizer
    inferencer = ImageClassificationInferencer(model=config, pretrained=checkpoint, device=device)
    visualizer = UniversalVisualizer()
    classes = inferencer.classes  # from the checkpoint's dataset_meta, when it has one

    def predict(path: Path, image: np.ndarray) -> None:
        result = inferencer(image)[0]
        order = np.argsort(-result['pred_scores'])[:topk]
        names = [classes[i] if classes else str(i) for i in order]
        print(f'{path}: ' + ', '.join(f'{n} {result["pred_scores"][i]:.2f}'
                                      for n, i in zip(names, order)))
        picture = visualizer.visualize_cls(image[..., ::-1], result_to_sample(result),
                                           classes=classes, show=False)
        write(out_dir / f'{path.stem}_cls.png', picture)

    return for_each_image(images, predict)


def main(argv=None) -> int:
    parser = ArgumentParser(prog='hrformer-demo', description=__doc__.splitlines()[0])
    parser.add_argument('images', help='an image file or a folder of images')
    parser.add_argument('config', help='a config of this package (configs/...)')
    parser.add_argument('checkpoint', help='trained or converted checkpoint, or an .onnx file '
                        'of hrformer-export (run by onnxruntime)')
    parser.add_argument('--out-dir', default='demo_out', help='where the pictures go')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument('--bboxes', nargs='+', metavar='X1,Y1,X2,Y2',
                        help='pose only: person boxes (default: the whole image)')
    parser.add_argument('--kpt-thr', type=float, default=0.3,
                        help='pose only: draw keypoints scoring at least this')
    parser.add_argument('--topk', type=int, default=5, help='classification only')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptions, metavar='KEY=VALUE',
                        help='override config settings, as OpenMMLab\'s tools: e.g. '
                        'model.data_preprocessor.bgr_to_rgb=False')
    args = parser.parse_args(argv)
    try:
        images = list_images(args.images)
        out_dir = Path(args.out_dir)
        existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())
        if not existing.is_dir():
            raise DemoError(f'--out-dir {out_dir}: {existing} is a file, not a folder')
        if not Path(args.checkpoint).is_file():
            raise DemoError(f'{args.checkpoint}: no such checkpoint file')
        cfg = load_config(args.config, args.cfg_options)
        host = host_of(cfg)
        bboxes = parse_bboxes(args.bboxes)
        if bboxes is not None and host != 'mmpose':
            raise DemoError('--bboxes is for pose configs only')
        # Before any inferencer: they load non-strictly and would draw a random head.
        exported = args.checkpoint.endswith('.onnx')  # onnxruntime, no PyTorch model built
        meta = {} if exported else check_against_config(cfg, args.checkpoint)
        if exported:
            from ..deploy.onnx_demo import run_exported
            failures = run_exported(host, images, cfg, args.checkpoint, out_dir, bboxes,
                                    args.kpt_thr, args.topk)
        elif host == 'mmseg':
            failures = segment(images, cfg, args.checkpoint, out_dir, args.device, meta)
        elif host == 'mmpose':
            failures = estimate_pose(images, cfg, args.checkpoint, out_dir, args.device,
                                     bboxes, args.kpt_thr)
        else:
            failures = classify(images, cfg, args.checkpoint, out_dir, args.device,
                                args.topk)
    except (DemoError, HostError, CheckpointError) as err:
        print(f'hrformer-demo: error: {err}', file=sys.stderr)
        return 2
    for failure in failures:
        print(f'hrformer-demo: error: {failure}', file=sys.stderr)
    done = len(images) - len(failures)
    if done:
        print(f'{done} picture(s) written to {out_dir}/')
    return 2 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
