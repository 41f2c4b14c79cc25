"""Class logits of every ground-truth box in both views of a pair, for the pair KL.

After a swap, the boxes of a class are the instances of that class visible in each
view. Both readers classify exactly those boxes with the detector's own classifier, so
no assigner or sampler is involved (the RoI reader does wrap the RoI head's
``_bbox_forward``, which every MMDetection RoI head has):

* ``RoIPairLogits`` (two-stage: Faster / Mask / Cascade R-CNN, HTC, ...): the RoI head's
  box branch classifies the ground-truth boxes as extra RoIs of its own training forward
  (its ``_bbox_forward`` runs on its RoIs and the boxes, whose rows are split off the
  results). Softmax over ``C + 1``.
* ``DensePairLogits`` (one-stage heads with a prior generator: RetinaNet, FCOS, ATSS,
  GFL, SABL and Guided Anchoring RetinaNet, ...): the head's classification maps,
  captured by a forward hook, read at each box's centre on the pyramid level that matches its size
  (``floor(log2(sqrt(wh) / (4 * stride_0)))``), every prior of that location counting
  as one element (where levels have different numbers of priors, SSD, a box on a level
  with fewer has the rest as padding that weighs nothing). Sigmoid (or softmax when the
  head uses one, SSD).
"""
from __future__ import annotations

import inspect
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from ...core.device import to_device
from ...core.instance_swap import owner_index
from ..loss_forward import loss_call_samples
from ..method_wrap import unwrap_method, wrap_method
from ..pair_logits import TrainingOutput


def _gt_boxes(data_samples: List) -> Tuple[List[Tensor], List[Tensor]]:
    boxes = [get_box_tensor(s.gt_instances.bboxes) for s in data_samples]
    return boxes, [s.gt_instances.labels for s in data_samples]


def _per_image(elements: Tensor, labels: Tensor, counts: List[int]) -> Tuple[Tensor, Tensor]:
    """``(n, C)`` elements and ``(n,)`` labels split per image -> ``(N, C, M)``, ``(N, M)`` (pad: -1)."""
    logits = pad_sequence(list(elements.split(counts)), batch_first=True)  # (N, M, C)
    padded = pad_sequence(list(labels.split(counts)), batch_first=True, padding_value=-1)
    return logits.transpose(1, 2), padded


class RoIPairLogits:
    """RoI-head classification of the ground-truth boxes (two-stage detectors).

    The ground-truth boxes ride along with the RoIs the head samples itself. For the length
    of a training forward, the RoI head's ``_bbox_forward`` (the last stage's, in a cascade)
    is wrapped: it runs on the head's RoIs with the boxes appended, and every output row of
    the boxes (class scores, box deltas, box features) is split off before the head's losses
    see the result. So everything ``_bbox_forward`` does with its RoIs sees the boxes too:
    the box RoI extractor, a semantic branch fused into the box features (HTC, SCNet), the
    box features a mask branch reuses (``share_roi_extractor``, the C4 Mask R-CNN), box heads
    with nested outputs (SABL). A call without gradients or on fewer images than the batch
    (TridentNet's branches run on copies of it) is not the training forward and runs as it
    is: OHEM's and PISA's samplers score one image's RoIs through ``_bbox_forward`` under
    ``no_grad`` first. The boxes cost no second pass through the extractor and the box head,
    which would compute the FC weights' gradient twice (50 MB for the stock
    ``Shared2FCBBoxHead``) and, through the extractor's guard for pyramid levels without
    RoIs, allocate a gradient the size of a whole feature level. The wrapper is an instance
    attribute that :meth:`remove` deletes; the head's class and ``state_dict`` are untouched.
    """

    use_sigmoid = False

    def __init__(self, detector: nn.Module) -> None:
        self.roi_head = roi_head = detector.roi_head
        bbox_head = roi_head.bbox_head
        self.stages = len(bbox_head) if isinstance(bbox_head, nn.ModuleList) else 0
        if self.stages:
            bbox_head = bbox_head[-1]
        forward = getattr(roi_head, '_bbox_forward', None)
        self._signature = inspect.signature(forward) if callable(forward) else None
        if self._signature is None or 'rois' not in self._signature.parameters:
            raise TypeError(f'IPSDistillHook: RoI head {type(roi_head).__name__} has no _bbox_forward(..., rois); '
                            'the pair KL supports RoI heads built on MMDetection\'s StandardRoIHead or '
                            'CascadeRoIHead')
        if getattr(bbox_head, 'custom_cls_channels', False) or getattr(bbox_head.loss_cls, 'use_sigmoid', False):
            raise TypeError(f'IPSDistillHook: RoI box head {type(bbox_head).__name__} does not score classes '
                            'with a softmax over C + 1; the pair KL supports softmax RoI heads')
        self.num_classes = int(bbox_head.num_classes)
        self._gt_rois: Optional[Tensor] = None  # (g, 5), from the loss forward's start to its last box stage
        self._num_images = 0
        self._scores: Optional[Tensor] = None
        self._bbox_forward_of_head = wrap_method(roi_head, '_bbox_forward', self._bbox_forward)
        self._handle = detector.register_forward_pre_hook(self._arm, with_kwargs=True)

    def _arm(self, detector: nn.Module, args: tuple, kwargs: dict) -> None:
        data_samples = loss_call_samples(detector, args, kwargs)
        self._gt_rois = None if data_samples is None else _rois(_gt_boxes(data_samples)[0])
        self._num_images = 0 if data_samples is None else len(data_samples)
        self._scores = None

    def _bbox_forward(self, *args, **kwargs) -> dict:
        """The head's ``_bbox_forward``; in the armed training forward's last stage, on its
        RoIs followed by the ground-truth boxes, whose rows are split off the results."""
        forward = self._bbox_forward_of_head
        if self._gt_rois is None:
            return forward(*args, **kwargs)
        call = self._signature.bind(*args, **kwargs)
        if self.stages and call.arguments['stage'] != self.stages - 1:
            return forward(*args, **kwargs)
        features = call.arguments.get('x')
        if not torch.is_grad_enabled() or (isinstance(features, (tuple, list)) and features
                                           and features[0].shape[0] < self._num_images):
            return forward(*args, **kwargs)  # a sampler scoring RoIs (OHEM, PISA), not the training forward
        rois, gt_rois, self._gt_rois = call.arguments['rois'], self._gt_rois, None
        own, rows = rois.shape[0], rois.shape[0] + gt_rois.shape[0]
        call.arguments['rois'] = torch.cat([rois, gt_rois.to(rois)])
        results = forward(*call.args, **call.kwargs)
        scores = results['cls_score']
        if scores.shape[0] != rows:
            raise RuntimeError(f'IPSDistillHook: {type(self.roi_head).__name__}._bbox_forward returned '
                               f'{scores.shape[0]} rows of class scores for {rows} RoIs (its own {own} and '
                               f'{rows - own} ground-truth boxes); this RoI head is not supported')
        self._scores = scores[own:]
        return {key: _leading_rows(value, rows, own) for key, value in results.items()}

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """Class scores ``(2P, C + 1, M)`` of the ground-truth boxes the box head classified in
        this step, ``M`` the most boxes of an image, and their labels ``(2P, M)`` (-1: padding)."""
        boxes, labels = _gt_boxes(data_samples)
        scores, self._scores, self._gt_rois = self._scores, None, None
        if scores is None:
            raise RuntimeError('IPSDistillHook: the RoI box head classified no ground-truth boxes in this '
                               'training step (nothing was captured)')
        return _per_image(scores, torch.cat(labels), [len(b) for b in boxes])

    def remove(self) -> None:
        self._handle.remove()
        unwrap_method(self.roi_head, '_bbox_forward', self._bbox_forward)


def _rois(boxes: List[Tensor]) -> Tensor:
    """Boxes ``(n_i, 4)`` of every image -> ``(sum n_i, 5)`` RoIs ``(image, x1, y1, x2, y2)``, as
    MMDetection's ``bbox2roi`` makes them (one concatenation, not two per image)."""
    flat = torch.cat(boxes)
    image = owner_index([len(b) for b in boxes], flat.device).to(flat.dtype)
    return torch.cat([image[:, None], flat], 1)


def _leading_rows(value, rows: int, own: int):
    """``value`` with every tensor of ``rows`` rows cut to its first ``own`` (through tuples and lists)."""
    if isinstance(value, Tensor):
        return value[:own] if value.dim() and value.shape[0] == rows else value
    if isinstance(value, (tuple, list)):
        return type(value)(_leading_rows(part, rows, own) for part in value)
    return value


# a probability is clamped to [eps, 1 - eps] before its logit (TOOD): logits within +-13.8
PROBABILITY_EPS = 1e-6


class DensePairLogits:
    """Dense-head classification maps read at the ground-truth box centres (one-stage).

    A head whose maps are already sigmoid probabilities (TOOD; its ``loss_cls`` has
    ``activated=True``) has them turned back into logits before the pair KL.
    """

    def __init__(self, detector: nn.Module) -> None:
        head = detector.bbox_head
        # SABL and Guided Anchoring heads place their (square) anchors with square_anchor_generator
        generator = getattr(head, 'prior_generator', None) or getattr(head, 'square_anchor_generator', None)
        if generator is None or not (hasattr(head, 'cls_out_channels') or hasattr(head, 'num_attrib')):
            missing = 'prior generator' if generator is None else 'per-level class maps (cls_out_channels)'
            raise TypeError(f'IPSDistillHook: dense head {type(head).__name__} has no {missing}; supported: '
                            'RetinaNet, FCOS, ATSS, GFL, SSD, SABL, YOLOv3 and other heads built on AnchorHead / '
                            'AnchorFreeHead')
        strides = [float(stride[0]) for stride in generator.strides]
        # the head's levels from the finest stride up (YOLOv3 lists them coarsest first); its maps
        # are put in this order every step (a list permutation), so a box's level follows from its size
        self._order = sorted(range(len(strides)), key=strides.__getitem__)
        self.strides = [strides[index] for index in self._order]
        self.num_classes = int(head.num_classes)
        if hasattr(head, 'cls_out_channels'):  # a class map per level: C (or C + 1) channels a prior
            self.channels = int(head.cls_out_channels)
            self.prior_channels, self.class_offset = self.channels, 0
        else:  # YOLOv3: every prior's channels are 4 box values, the objectness, then the C class logits
            self.channels = self.num_classes
            self.prior_channels = int(head.num_attrib)
            self.class_offset = self.prior_channels - self.num_classes
        self.use_sigmoid = bool(getattr(head, 'use_sigmoid_cls', True))
        # TOOD's head outputs probabilities (its losses take them ``activated``): back to logits
        self.activated = bool(getattr(getattr(head, 'loss_cls', None), 'activated', False))
        if self.activated and not self.use_sigmoid:
            raise TypeError(f'IPSDistillHook: dense head {type(head).__name__} outputs softmax probabilities '
                            '(loss_cls.activated); the pair KL reads logits')
        priors = getattr(head, 'num_base_priors', 1)
        # priors of every level (SSD: a different number per level); a box's element count is the
        # largest, the priors its level lacks padded with label -1, which weighs nothing
        priors = [int(count) for count in priors] if isinstance(priors, (list, tuple)) \
            else [int(priors)] * len(self.strides)
        if len(priors) != len(self.strides):
            raise TypeError(f'IPSDistillHook: dense head {type(head).__name__} has {len(priors)} prior '
                            f'counts for {len(self.strides)} levels')
        self.level_priors = [priors[index] for index in self._order]
        self.priors = max(self.level_priors)
        self._pads_priors = min(self.level_priors) < self.priors
        self.head_name = type(head).__name__
        self._levels: dict = {}
        self._class_maps = TrainingOutput(head)

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """Class logits ``(2P, C, M)`` read at every ground-truth box's centre on its level,
        one element per prior (``M``: an image's boxes times the most priors of a level), and
        their labels ``(2P, M)`` (-1: padding, and the priors a box's level lacks)."""
        cls_scores = self._class_maps.take('the dense head produced no class maps')[0]
        cls_scores = [cls_scores[index] for index in self._order]  # finest stride first
        for index, scores, priors in zip(self._order, cls_scores, self.level_priors):
            if scores.shape[1] != priors * self.prior_channels:
                raise TypeError(f'IPSDistillHook: {self.head_name} level {index} has {scores.shape[1]} channels, '
                                f'expected {priors} priors x {self.prior_channels}')
        boxes, labels = _gt_boxes(data_samples)
        counts = [len(b) for b in boxes]
        device = cls_scores[0].device
        flat = to_device(torch.cat(boxes), device)  # (n, 4)
        image = owner_index(counts, device)
        # every level's stride (doubled: the centre is the sum of the corners over 2), last
        # column and row (L, 1, 2), smallest box area (L - 1,) and prior count (L,)
        strides, limits, areas, priors_per_level = self._level_table(
            tuple(scores.shape[2:] for scores in cls_scores), device)
        # the level ``floor(log2(sqrt(wh) / (4 * stride_0)))``, clamped to the levels: how many
        # levels' smallest areas ``(4 * stride_0 * 2^l)^2``, l >= 1, the box's area reaches
        area = (flat[:, 2:] - flat[:, :2]).clamp(min=1).prod(1)
        level = (area[:, None] >= areas).sum(1)
        # every box's centre cell (x, y) on every level, inside the level's map: (L, n, 2)
        cells = torch.minimum(((flat[:, :2] + flat[:, 2:]) / strides).long().clamp(min=0), limits)
        picked = [scores[image, :, y, x] for scores, (x, y) in zip(cls_scores, cells.permute(0, 2, 1))]
        width = self.priors * self.prior_channels  # levels with fewer priors (SSD) padded to the most
        picked = torch.stack([F.pad(part, (0, width - part.shape[1])) if part.shape[1] < width else part
                              for part in picked])  # (L, n, P * C)
        elements = picked[level, torch.arange(len(flat), device=device)]  # (n, priors * channels), each box's level
        elements = elements.view(-1, self.prior_channels)  # every prior of a box is one element
        if self.class_offset:  # YOLOv3: the class logits after the box values and objectness
            elements = elements[:, self.class_offset:]
        if self.activated:  # sigmoid probabilities (TOOD) -> their logits, in float32 (fp16 rounds 1 - 1e-6 to 1)
            elements = elements.float().clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS).logit()
        labels = to_device(torch.cat(labels), device).repeat_interleave(self.priors)  # (n * priors,)
        if self._pads_priors:  # the priors a box's level does not have: label -1
            present = torch.arange(self.priors, device=device) < priors_per_level[level][:, None]
            labels = torch.where(present.view(-1), labels, -1)
        return _per_image(elements, labels, [c * self.priors for c in counts])

    def _level_table(self, sizes: Tuple[Tuple[int, int], ...],
                     device: torch.device) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every level's doubled stride ``(L, 1, 1)``, last column and row ``(L, 1, 2)`` (long),
        smallest box area ``(L - 1,)`` from the second level up, and prior count ``(L,)``,
        finest stride first, on ``device``; made once per map geometry (host-to-device
        copies every step otherwise)."""
        key = (sizes, device)
        if key not in self._levels:
            if len(self._levels) >= 8:  # multi-scale training: a few geometries, not unbounded
                self._levels.clear()
            strides = torch.tensor([2 * stride for stride in self.strides], device=device).view(-1, 1, 1)
            limits = torch.tensor([[width - 1, height - 1] for height, width in sizes], device=device)
            areas = torch.tensor([(4 * self.strides[0] * 2**level)**2 for level in range(1, len(sizes))],
                                 device=device)
            self._levels[key] = (strides, limits.view(-1, 1, 2), areas,
                                 torch.tensor(self.level_priors, device=device))
        return self._levels[key]

    def remove(self) -> None:
        self._class_maps.remove()

