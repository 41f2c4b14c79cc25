"""Class logits of the queries matched to ground-truth boxes (query-based detectors), for the pair KL.

A query-based detector has no prior at a box's centre, and its box head cannot classify
extra RoIs on their own (Sparse R-CNN's and QueryInst's ``DIIHead`` needs every RoI's query
features): its queries are matched one to one to the boxes (Hungarian matching, by the
head's own assigner) and each matched query's class scores are the model's prediction
for its box. So the elements of a view are its queries, labelled with the class of the
box each is matched to (unmatched queries weigh nothing), and the class means of the
pair KL average the matched queries of each class. That is the last decoder layer's (the
last stage's) matching as the head's own loss computes it, read, not changed: the head's
loss method (``loss_by_feat_single`` of a DETR-style head, ``loss_and_target`` of the last
``DIIHead``) and its ``get_targets`` are wrapped (instance attributes, removed by
:meth:`QueryPairLogits.remove`) to see the class scores of each call and the labels its
matching gave them, and a forward hook on the head tells the calls on the scores of its
training forward (the decoder layers', slices of one stacked output) from any other (the
encoder's proposals in Deformable DETR and DINO). DINO's denoising queries, which are
noised copies of the boxes, do not enter; only its matching queries do.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..method_wrap import unwrap_method, wrap_method


def is_query_head(head: nn.Module) -> bool:
    """Whether ``head`` is an MMDetection DETR-style head (``DETRHead`` and its subclasses:
    Conditional DETR, DAB-DETR, Deformable DETR, DINO) or the query box head ``DIIHead``
    (Sparse R-CNN, QueryInst)."""
    from mmdet.models.dense_heads import DETRHead
    from mmdet.models.roi_heads import DIIHead
    return isinstance(head, (DETRHead, DIIHead))


def query_head(detector: nn.Module) -> Optional[nn.Module]:
    """The query head of ``detector`` (see :func:`is_query_head`): its ``bbox_head``, or the
    last stage's box head of its RoI head; ``None`` if it has none."""
    roi_head = getattr(detector, 'roi_head', None)
    if roi_head is not None:
        heads = getattr(roi_head, 'bbox_head', None)
        head = heads[-1] if isinstance(heads, nn.ModuleList) else heads
    else:
        head = getattr(detector, 'bbox_head', None)
    return head if head is not None and is_query_head(head) else None


class QueryPairLogits:
    """Class scores ``(2P, C, Q)`` of the last decoder layer's (stage's) queries, labelled by their matching.

    Softmax over ``C + 1`` (DETR) or ``C`` sigmoids (Deformable DETR, DINO, Sparse R-CNN,
    QueryInst: focal loss), as the head's ``loss_cls`` scores them.
    """

    def __init__(self, detector: nn.Module) -> None:
        head = query_head(detector)
        if head is None:
            raise TypeError(f'IPSDistillHook: {type(detector).__name__} has no DETR-style head or DIIHead')
        if hasattr(head, 'loss_for_distinct_queries'):
            # DDQ-DETR: its decoder losses go through its own matching of distinct queries
            raise TypeError(f'IPSDistillHook: query head {type(head).__name__} computes its decoder losses for '
                            'distinct queries (DDQ), which the pair KL does not read; supported: DETR, Conditional '
                            'DETR, DAB-DETR, Deformable DETR, DINO, Sparse R-CNN, QueryInst')
        self.head = head
        self.head_name = type(head).__name__
        self.num_classes = int(head.num_classes)
        self.use_sigmoid = bool(head.loss_cls.use_sigmoid)
        self._loss_name = 'loss_by_feat_single' if hasattr(head, 'loss_by_feat_single') else 'loss_and_target'
        self._output_storage: Optional[int] = None  # the class scores of the head's training forward
        self._labels = None  # the query labels of the current loss call: a tensor, or one per image
        self._matched: Optional[Tuple[Tensor, Tensor]] = None
        self._handle = head.register_forward_hook(self._capture)
        self._loss_of_head = wrap_method(head, self._loss_name, self._loss)
        self._get_targets_of_head = wrap_method(head, 'get_targets', self._get_targets)

    def _capture(self, module: nn.Module, args, output) -> None:
        if module.training:
            self._output_storage = output[0].untyped_storage().data_ptr()
            self._matched = None

    def _get_targets(self, *args, **kwargs) -> tuple:
        """The head's ``get_targets``; the query labels of its result are kept (one tensor, or
        one per image)."""
        targets = self._get_targets_of_head(*args, **kwargs)
        self._labels = targets[0]
        return targets

    def _loss(self, cls_scores: Tensor, *args, **kwargs):
        """The head's loss method; for class scores ``(N, Q, C)`` (``(N * Q, C)``) of its training
        forward, the scores and the labels of their matching are kept (the last layer's call
        comes last)."""
        self._labels = None
        losses = self._loss_of_head(cls_scores, *args, **kwargs)
        if (self._output_storage is not None and self._labels is not None
                and cls_scores.untyped_storage().data_ptr() == self._output_storage):
            self._matched = cls_scores, self._labels
        self._labels = None
        return losses

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """Logits ``(2P, C, Q)`` and labels ``(2P, Q)``: the class of a matched query's box, or
        ``num_classes`` (outside the classes, weighing nothing) for an unmatched one."""
        matched, self._matched, self._output_storage = self._matched, None, None
        if matched is None:
            raise RuntimeError(f'IPSDistillHook: {self.head_name} computed no loss with a matching of its '
                               'queries in this training step (nothing was captured)')
        scores, labels = matched
        if not isinstance(labels, Tensor):  # one per image; stacked here, for the one call kept
            labels = torch.stack(labels)
        num = len(data_samples)
        return scores.reshape(num, -1, scores.shape[-1]).transpose(1, 2), labels.reshape(num, -1)

    def remove(self) -> None:
        self._handle.remove()
        unwrap_method(self.head, self._loss_name, self._loss)
        unwrap_method(self.head, 'get_targets', self._get_targets)
