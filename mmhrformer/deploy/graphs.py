"""The exported computation of each host's model: from the image batch its data preprocessor
receives to what its ``predict`` turns into results.

Every graph takes ``image``: (N, 3, H, W) float32, pixel values 0-255, channels in the order the
host's pipeline loads them (BGR, as ``mmcv.imread``). The data preprocessor's work on a stacked
batch (the channel swap, then ``(x - mean) / std``) is the graph's first step, so a deployed
model needs no OpenMMLab code in front of it. Each graph calls the host model's own methods; only
the per-sample bookkeeping of ``predict`` (data samples, padding records) stays outside.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import shape_of

TASKS = {'mmseg': 'segmentation', 'mmpose': 'pose', 'mmpretrain': 'classification'}


class GraphError(ValueError):
    """A model that this export does not cover; the message says what and why."""


class Normalize(nn.Module):
    """The host data preprocessor's channel swap and normalisation of a stacked batch.

    Args:
        mean (Sequence[float]): Per channel, in the order after the swap.
        std (Sequence[float]): Per channel, in the order after the swap.
        swap_rb (bool): Reverse the channels first (``bgr_to_rgb`` / ``to_rgb``).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], swap_rb: bool):
        super().__init__()
        self.swap_rb = swap_rb
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @classmethod
    def of(cls, data_preprocessor: nn.Module) -> 'Normalize':
        """The settings of a built MMSeg / MMPose / MMPretrain data preprocessor."""
        # MMSeg's SegDataPreProcessor, MMPretrain's ClsDataPreprocessor and MMEngine's
        # ImgDataPreprocessor (MMPose's base) name the same switch differently.
        for flag in ('channel_conversion', 'to_rgb', '_channel_conversion'):
            if hasattr(data_preprocessor, flag):
                swap_rb = bool(getattr(data_preprocessor, flag))
                break
        else:
            raise GraphError(f'{type(data_preprocessor).__name__}: not a data preprocessor of '
                             'MMSeg, MMPose or MMPretrain (no channel order setting)')
        if getattr(data_preprocessor, '_enable_normalize', False):
            mean = data_preprocessor.mean.flatten().tolist()
            std = data_preprocessor.std.flatten().tolist()
        else:
            mean, std = [0.0] * 3, [1.0] * 3
        return cls(mean, std, swap_rb)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) 0-255 as loaded -> (N, 3, H, W) normalised, in the model's order."""
        if self.swap_rb:
            image = image[:, [2, 1, 0]]
        return (image - self.mean) / self.std

    def describe(self) -> Dict:
        return dict(mean=self.mean.flatten().tolist(), std=self.std.flatten().tolist(),
                    swap_rb=self.swap_rb)


class SegmentationGraph(nn.Module):
    """MMSeg segmentor: the logits at the input size (``encode_decode``), or the label map.

    Args:
        segmentor (nn.Module): A built ``EncoderDecoder`` / ``CascadeEncoderDecoder``.
        argmax (bool): Output the label map (as ``predict`` derives it) instead of the logits.
    """

    def __init__(self, segmentor: nn.Module, argmax: bool = False):
        super().__init__()
        if not hasattr(segmentor, 'encode_decode'):
            raise GraphError(f'{type(segmentor).__name__}: not an MMSeg encoder-decoder')
        self.normalize = Normalize.of(segmentor.data_preprocessor)
        self.segmentor = segmentor
        self.argmax = argmax
        head = segmentor.decode_head
        self.head = head[-1] if isinstance(head, nn.ModuleList) else head
        self.num_labels = self.head.num_classes

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> logits (N, C, H, W) float32, or labels (N, 1, H, W) int64."""
        logits = self.logits(image)
        return labels_of(logits, self.head.threshold) if self.argmax else logits

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, H, W): ``encode_decode`` of the normalised batch."""
        inputs = self.normalize(image)
        # The decode heads read the output size from the first image's meta only (a batch shares
        # one size); a list of N would tie the graph to the example's batch size.
        return self.segmentor.encode_decode(inputs, [dict(img_shape=shape_of(inputs)[2:])])

    def describe(self) -> Dict:
        name = 'seg_labels' if self.argmax else 'seg_logits'
        return dict(output=dict(
            name=name, shape=['batch', 1 if self.argmax else self.head.out_channels, 'height',
                              'width'],
            dtype='int64' if self.argmax else 'float32',
            meaning=('class index per pixel (the argmax of the logits)' if self.argmax else
                     'class logits per pixel at the input size (encode_decode; the argmax over '
                     'channels is the label map)')),
            align_corners=bool(self.head.align_corners), threshold=self.head.threshold)


def labels_of(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """MMSeg's ``postprocess_result``: argmax over classes, or the sigmoid against ``threshold``
    for a single-channel (binary) head. (N, C, H, W) -> (N, 1, H, W) int64."""
    if logits.shape[1] == 1:
        return (logits.sigmoid() > threshold).long()
    return logits.argmax(dim=1, keepdim=True)


class PoseGraph(nn.Module):
    """MMPose top-down estimator with a heatmap head: the heatmaps its ``predict`` decodes.

    With ``test_cfg.flip_test`` the heatmaps of the flipped crops, flipped back as the head does
    it (keypoint pairs swapped, optionally shifted one pixel), averaged in.

    Args:
        estimator (nn.Module): A built ``TopdownPoseEstimator``.
        flip_indices (list[int], optional): The data set's left-right keypoint pairs; needed with
            flip test.
    """

    def __init__(self, estimator: nn.Module, flip_indices: Optional[List[int]] = None):
        super().__init__()
        from mmpose.models.heads import HeatmapHead
        from mmpose.models.pose_estimators import TopdownPoseEstimator
        if not isinstance(estimator, TopdownPoseEstimator):
            raise GraphError(f'{type(estimator).__name__}: only top-down pose estimators export')
        if not isinstance(estimator.head, HeatmapHead):
            raise GraphError(f'{type(estimator.head).__name__}: only heatmap heads export '
                             '(the output is the heatmaps)')
        self.normalize = Normalize.of(estimator.data_preprocessor)
        self.estimator = estimator
        self.num_labels = estimator.head.out_channels
        test_cfg = estimator.test_cfg or {}
        self.flip_test = bool(test_cfg.get('flip_test', False))
        if self.flip_test and flip_indices is None:
            raise GraphError('flip test needs the data set\'s flip_indices')
        self.flip_indices = list(flip_indices) if self.flip_test else None
        self.flip_mode = test_cfg.get('flip_mode', 'heatmap')
        self.shift_heatmap = test_cfg.get('shift_heatmap', False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) person crops -> heatmaps (N, K, H / 4, W / 4) (the head's stride)."""
        from mmpose.models.utils.tta import flip_heatmaps
        inputs = self.normalize(image)
        heatmaps = self.estimator.head.forward(self.estimator.extract_feat(inputs))
        if not self.flip_test:
            return heatmaps
        flipped = self.estimator.head.forward(self.estimator.extract_feat(inputs.flip(-1)))
        flipped = flip_heatmaps(flipped, flip_indices=self.flip_indices, flip_mode=self.flip_mode,
                                shift_heatmap=self.shift_heatmap)
        return (heatmaps + flipped) * 0.5

    def describe(self) -> Dict:
        return dict(output=dict(
            name='heatmaps', shape=['batch', self.num_labels, 'height / 4',
                                    'width / 4'], dtype='float32',
            meaning='one heatmap per keypoint, in the crop\'s frame; the codec of the config '
                    'decodes them' + (' (flip test included)' if self.flip_test else '')),
            flip_test=self.flip_test)


class ClassificationGraph(nn.Module):
    """MMPretrain classifier: the class scores, softmax of the head's logits as its ``predict``.

    Args:
        classifier (nn.Module): A built ``ImageClassifier`` whose head is a ``ClsHead``.
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        from mmpretrain.models.heads import ClsHead
        head = getattr(classifier, 'head', None)
        # ClsHead._get_predictions (what predict runs) is a softmax; heads that override it
        # (multi-label, retrieval) compute something else.
        if not isinstance(head, ClsHead) or type(head)._get_predictions is not \
                ClsHead._get_predictions:
            raise GraphError(f'{type(head).__name__}: only classifiers whose head scores by '
                             'softmax (ClsHead and its linear / MLP variants) export')
        self.normalize = Normalize.of(classifier.data_preprocessor)
        self.classifier = classifier
        self.num_labels = getattr(head, 'num_classes', None)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> class scores (N, num_classes), each row summing to 1."""
        return F.softmax(self.classifier(self.normalize(image), mode='tensor'), dim=1)

    def describe(self) -> Dict:
        return dict(output=dict(name='scores', shape=['batch', self.num_labels],
                                dtype='float32', meaning='class probabilities (softmax of the '
                                'head\'s logits, as MMPretrain\'s predict gives pred_score)'))


def build_graph(host: str, model: nn.Module, dataset_meta: Dict, argmax: bool = False) -> nn.Module:
    """The export graph of a built host model (in eval mode).

    Args:
        host (str): ``'mmseg'``, ``'mmpose'`` or ``'mmpretrain'``.
        model (nn.Module): The host's model with its weights.
        dataset_meta (dict): The data set's metainfo (pose: ``flip_indices`` for flip test).
        argmax (bool): Segmentation only: output the label map.
    """
    if argmax and host != 'mmseg':
        raise GraphError('--argmax is for segmentation configs only')
    if host == 'mmseg':
        graph = SegmentationGraph(model, argmax)
    elif host == 'mmpose':
        graph = PoseGraph(model, dataset_meta.get('flip_indices'))
    else:
        graph = ClassificationGraph(model)
    return graph.eval()
