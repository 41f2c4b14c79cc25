"""Class logits of every ground-truth box in both views of a pair, for the pair KL.

After a swap, the boxes of a class are the instances of that class visible in each
view. Both extractors classify exactly those boxes with the detector's own classifier,
so no assigner, sampler or head internals are involved:

* ``RoIPairLogits`` (two-stage: Faster / Mask / Cascade R-CNN): the RoI head's box
  branch run on the ground-truth boxes as RoIs, on the features of the same training
  forward (captured by a forward hook on the neck). Softmax over ``C + 1``.
* ``DensePairLogits`` (one-stage heads with a prior generator: RetinaNet, FCOS, ATSS,
  GFL, ...): the head's classification maps, captured by a forward hook, read at each
  box's centre on the pyramid level that matches its size
  (``floor(log2(sqrt(wh) / (4 * stride_0)))``), every prior of that location counting
  as one element. Sigmoid (or softmax when the head uses one).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence


def _gt_boxes(data_samples: List) -> Tuple[List[Tensor], List[Tensor]]:
    boxes = [s.gt_instances.bboxes for s in data_samples]
    boxes = [b.tensor if hasattr(b, 'tensor') else b for b in boxes]
    return boxes, [s.gt_instances.labels for s in data_samples]


def _per_image(elements: Tensor, labels: Tensor, counts: List[int]) -> Tuple[Tensor, Tensor]:
    """``(n, C)`` elements and ``(n,)`` labels split per image -> ``(N, C, M)``, ``(N, M)`` (pad: -1)."""
    logits = pad_sequence(list(elements.split(counts)), batch_first=True)  # (N, M, C)
    padded = pad_sequence(list(labels.split(counts)), batch_first=True, padding_value=-1)
    return logits.transpose(1, 2), padded


class _FeatureCapture:
    def __init__(self, module: nn.Module) -> None:
        self.value = None
        self._handle = module.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args, output) -> None:
        if module.training:
            self.value = output

    def take(self):
        value, self.value = self.value, None
        if value is None:
            raise RuntimeError('IPSDistillHook: nothing was captured in this training step')
        return value

    def remove(self) -> None:
        self._handle.remove()


class RoIPairLogits:
    """RoI-head classification of the ground-truth boxes (two-stage detectors)."""

    use_sigmoid = False

    def __init__(self, detector: nn.Module) -> None:
        self.roi_head = detector.roi_head
        bbox_head = self.roi_head.bbox_head
        self.stages = len(bbox_head) if isinstance(bbox_head, nn.ModuleList) else 0
        last = bbox_head[-1] if self.stages else bbox_head
        if getattr(last, 'custom_cls_channels', False) or getattr(last.loss_cls, 'use_sigmoid', False):
            raise TypeError(f'IPSDistillHook: RoI box head {type(last).__name__} does not score classes with a '
                            'softmax over C + 1; the pair KL supports softmax RoI heads')
        self.num_classes = int(last.num_classes)
        self._features = _FeatureCapture(detector.neck if getattr(detector, 'with_neck', False)
                                         else detector.backbone)

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        from mmdet.structures.bbox import bbox2roi
        features = self._features.take()
        boxes, labels = _gt_boxes(data_samples)
        rois = bbox2roi(boxes)
        if self.stages:
            results = self.roi_head._bbox_forward(self.stages - 1, features, rois)
        else:
            results = self.roi_head._bbox_forward(features, rois)
        return _per_image(results['cls_score'], torch.cat(labels), [len(b) for b in boxes])

    def remove(self) -> None:
        self._features.remove()


class DensePairLogits:
    """Dense-head classification maps read at the ground-truth box centres (one-stage)."""

    def __init__(self, detector: nn.Module) -> None:
        head = detector.bbox_head
        generator = getattr(head, 'prior_generator', None)
        if generator is None or not hasattr(head, 'cls_out_channels'):
            raise TypeError(f'IPSDistillHook: dense head {type(head).__name__} has no prior generator and '
                            'per-level classification maps; supported: RetinaNet, FCOS, ATSS, GFL and other '
                            'heads built on AnchorHead / AnchorFreeHead')
        self.strides = [float(stride[0]) for stride in generator.strides]
        self.num_classes = int(head.num_classes)
        self.channels = int(head.cls_out_channels)
        self.use_sigmoid = bool(getattr(head, 'use_sigmoid_cls', True))
        self.priors = int(getattr(head, 'num_base_priors', 1))
        self.head_name = type(head).__name__
        self._scores = _FeatureCapture(head)

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        cls_scores = self._scores.take()[0]
        boxes, labels = _gt_boxes(data_samples)
        counts = [len(b) for b in boxes]
        device = cls_scores[0].device
        flat = torch.cat(boxes).to(device).float()
        image = torch.repeat_interleave(torch.arange(len(boxes), device=device), torch.tensor(counts, device=device))
        size = ((flat[:, 2] - flat[:, 0]).clamp(min=1) * (flat[:, 3] - flat[:, 1]).clamp(min=1)).sqrt()
        level = torch.floor(torch.log2(size / (4 * self.strides[0]))).clamp(0, len(cls_scores) - 1).long()
        centre_x = (flat[:, 0] + flat[:, 2]) / 2
        centre_y = (flat[:, 1] + flat[:, 3]) / 2
        elements = flat.new_zeros(len(flat), self.priors, self.channels)
        for index, (scores, stride) in enumerate(zip(cls_scores, self.strides)):
            if scores.shape[1] != self.priors * self.channels:
                raise TypeError(f'IPSDistillHook: {self.head_name} level {index} has {scores.shape[1]} channels, '
                                f'expected {self.priors} priors x {self.channels} classes')
            y = (centre_y / stride).long().clamp(0, scores.shape[2] - 1)
            x = (centre_x / stride).long().clamp(0, scores.shape[3] - 1)
            picked = scores[image, :, y, x].view(-1, self.priors, self.channels).float()
            elements = torch.where((level == index)[:, None, None], picked, elements)
        labels = torch.cat(labels).to(device)
        elements = elements.flatten(0, 1)  # every prior of a box is one element
        return _per_image(elements, labels.repeat_interleave(self.priors), [c * self.priors for c in counts])

    def remove(self) -> None:
        self._scores.remove()

