"""``hrformer-demo IMAGES CONFIG model.onnx``: an exported file's predictions, drawn as the demo
draws the PyTorch checkpoint's, through onnxruntime and without building the PyTorch model.

Before and after the file, the hosts' own code: the config's test pipeline (MMSeg's, with the
inferencer's loader; MMPose's ``TopdownAffine`` crops; MMPretrain's resize and crop), then MMSeg's
resizing of the logits to the image, the pose codec's decoding and MMPose's mapping back to the
image, MMPretrain's top-k; the hosts' visualizers draw. The data set's names, palette and skeleton
come from the file's metadata, as the checkpoint's meta would give them.
"""
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

import numpy as np
import torch

from ..apis import DemoError, for_each_image, result_to_sample, visualizer_of, write
from .graphs import TASKS, labels_of
from .onnx_runtime import OnnxModel, OnnxRuntimeError


def run_exported(host: str, images: List[Path], config, onnx_file: str, out_dir: Path,
                 bboxes: Optional[np.ndarray], kpt_thr: float, topk: int) -> List[str]:
    """Predicts and draws every image with the exported file; returns one line per image that
    failed (as the demo's PyTorch paths do).

    Raises:
        DemoError: The file does not load, or was exported from a config of another task.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    try:
        model = OnnxModel(onnx_file)
    except OnnxRuntimeError as err:
        raise DemoError(str(err)) from None
    exported = model.metadata.get('host')
    if exported != host:
        task = TASKS.get(exported, 'no task this demo knows')
        raise DemoError(f'{onnx_file}: exported for {task}, the config is for {TASKS[host]}')
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    init_default_scope(host)
    if host == 'mmseg':
        predict = segmenter(model, cfg, out_dir)
    elif host == 'mmpose':
        predict = pose_estimator(model, cfg, out_dir, bboxes, kpt_thr)
    else:
        predict = classifier(model, cfg, out_dir, topk)
    return for_each_image(images, predict)


def segmenter(model: OnnxModel, cfg, out_dir: Path):
    """MMSegInferencer's steps: its pipeline, the logits resized to the image, the label map,
    ``SegLocalVisualizer`` at opacity 0.8 with labels."""
    from mmcv.transforms import Compose
    from mmengine.structures import PixelData
    from mmseg.models.utils import resize
    # As MMSegInferencer._init_pipeline: no annotations; the loader takes arrays.
    steps = [dict(step) for step in cfg.test_dataloader.dataset.pipeline
             if step['type'] not in ('LoadAnnotations', 'LoadDepthAnnotation')]
    for step in steps:
        if step['type'] == 'LoadImageFromFile':
            step['type'] = 'InferencerLoader'
    pipeline = Compose(steps)
    meta = model.metadata['dataset_meta']
    classes = meta['classes']
    visualizer = visualizer_of(cfg)
    visualizer.set_dataset_meta(classes=classes, palette=meta.get('palette'))
    visualizer.alpha = 0.8
    logits_out = model.metadata['output']['name'] == 'seg_logits'

    def predict(path: Path, image: np.ndarray) -> None:
        data = pipeline(image)
        sample = data['data_samples']
        out = torch.from_numpy(model.run(data['inputs'][None].float().numpy()))
        size = sample.metainfo['ori_shape']
        if logits_out:  # as BaseSegmentor.postprocess_result
            logits = resize(out, size=size, mode='bilinear',
                            align_corners=model.metadata['align_corners'], warning=False)
            labels = labels_of(logits, model.metadata.get('threshold', 0.3))
        else:  # a label map (--argmax): only nearest resizing keeps labels
            labels = torch.nn.functional.interpolate(out.float(), size=size).long()
        sample.pred_sem_seg = PixelData(data=labels[0])
        found, counts = np.unique(labels.numpy(), return_counts=True)
        order = sorted(zip(found, counts), key=lambda t: -t[1])[:5]
        # MMSegInferencer draws the array it was given, in its loaded (BGR) order.
        visualizer.add_datasample(path.name, image.copy(), sample, draw_gt=False,
                                  draw_pred=True, with_labels=True)
        write(out_dir / f'{path.stem}_seg.png', visualizer.get_image())
        print(f'{path}: ' + ', '.join(f'{classes[i]} {c / counts.sum():.0%}' for i, c in order))

    return predict


def pose_estimator(model: OnnxModel, cfg, out_dir: Path, bboxes: Optional[np.ndarray],
                   kpt_thr: float):
    """inference_topdown's steps: the test pipeline per box, the heatmaps decoded by the config's
    codec, keypoints mapped back to the image; MMPose's visualizer (matplotlib, as the demo)."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmpose.models.heads.base_head import BaseHead
    from mmpose.models.pose_estimators import TopdownPoseEstimator
    from mmpose.registry import KEYPOINT_CODECS
    from mmpose.structures import merge_data_samples
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    dataset_meta = model.metadata['dataset_meta']
    # The host's decoding and mapping are methods of the head and the estimator that read only
    # the codec and the test settings from ``self``: called with those, not with a PyTorch model.
    head = SimpleNamespace(decoder=KEYPOINT_CODECS.build(cfg.model.head.decoder))
    estimator = SimpleNamespace(test_cfg=cfg.model.get('test_cfg') or {})
    visualizer = visualizer_of(cfg, backend='matplotlib')
    visualizer.set_dataset_meta(dataset_meta)

    def predict(path: Path, image: np.ndarray) -> None:
        boxes = bboxes if bboxes is not None else np.array(
            [[0, 0, image.shape[1], image.shape[0]]], dtype=np.float32)
        batch = pseudo_collate([
            pipeline(dict(img=image, bbox=box[None], bbox_score=np.ones(1, np.float32),
                          **dataset_meta)) for box in boxes])
        heatmaps = model.run(torch.stack(batch['inputs']).float().numpy())
        preds = BaseHead.decode(head, torch.from_numpy(heatmaps))
        samples = TopdownPoseEstimator.add_pred_to_datasample(estimator, preds, None,
                                                              batch['data_samples'])
        result = merge_data_samples(samples)
        visualizer.add_datasample('pose', image[..., ::-1], data_sample=result, draw_gt=False,
                                  draw_bbox=True, kpt_thr=kpt_thr, show=False)
        write(out_dir / f'{path.stem}_pose.png', visualizer.get_image())
        scores = result.pred_instances.keypoint_scores
        print(f'{path}: {len(boxes)} person box(es), mean keypoint score {scores.mean():.2f}')

    return predict


def classifier(model: OnnxModel, cfg, out_dir: Path, topk: int):
    """ImageClassificationInferencer's steps: its pipeline, the scores, the top-k;
    MMPretrain's ``UniversalVisualizer``."""
    from mmengine.dataset import Compose, default_collate
    from mmpretrain.datasets import remove_transform
    from mmpretrain.registry import TRANSFORMS
    from mmpretrain.visualization import UniversalVisualizer
    steps = remove_transform(cfg.test_dataloader.dataset.pipeline, 'LoadImageFromFile')
    pipeline = Compose([TRANSFORMS.build(step) for step in steps])
    classes = model.metadata['labels'] or None
    visualizer = UniversalVisualizer()

    def predict(path: Path, image: np.ndarray) -> None:
        batch = default_collate([pipeline(dict(img=image, img_shape=image.shape[:2],
                                               ori_shape=image.shape[:2]))])
        scores = model.run(batch['inputs'].float().numpy())[0]
        result = dict(pred_scores=scores, pred_label=int(scores.argmax()))
        order = np.argsort(-scores)[:topk]
        print(f'{path}: ' + ', '.join(f'{classes[i] if classes else i} {scores[i]:.2f}'
                                      for i in order))
        picture = visualizer.visualize_cls(image[..., ::-1], result_to_sample(result),
                                           classes=classes, show=False)
        write(out_dir / f'{path.stem}_cls.png', picture)

    return predict
