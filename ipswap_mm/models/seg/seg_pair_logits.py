"""Per-cell logits and class pixel counts of a segmentor's training forward, for the pair KL."""
from __future__ import annotations

import functools
from typing import List, Tuple

import torch
from torch import Tensor, nn


class SegPairLogits:
    """Capture the decode head's class logits during training and pair them with labels.

    A forward hook on the decode head's final classifier (``conv_seg``, which every
    ``BaseDecodeHead`` applies in ``cls_seg``) records its output ``(2P, C, h, w)`` at the
    head's own resolution. The swapped ``gt_sem_seg`` maps become per-cell class pixel
    counts (:func:`cell_class_counts`), so the class means cover every labelled pixel and
    the KL never touches full-resolution logits.
    With a cascade of decode heads, the last one is used; auxiliary heads are not.
    """

    use_sigmoid = False

    def __init__(self, segmentor: nn.Module) -> None:
        head = segmentor.decode_head
        if isinstance(head, nn.ModuleList):
            head = head[-1]
        classifier = getattr(head, 'conv_seg', None)
        if not isinstance(classifier, nn.Module):
            raise TypeError(f'IPSDistillHook: decode head {type(head).__name__} has no conv_seg classifier; '
                            'only heads built on mmseg BaseDecodeHead are supported')
        if getattr(head, 'out_channels', head.num_classes) != head.num_classes:
            raise TypeError(f'IPSDistillHook: decode head {type(head).__name__} predicts '
                            f'{head.out_channels} channel(s) for {head.num_classes} classes (binary sigmoid '
                            'output); the pair KL needs one softmax channel per class')
        self.num_classes = int(head.num_classes)
        self._logits = None
        self._handle = classifier.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args, output: Tensor) -> None:
        if module.training:
            self._logits = output

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """Logits ``(2P, C, h*w)`` of the last training forward and the class weights
        ``(2P, h*w, K)`` of their cells (see :func:`cell_class_counts`)."""
        logits, self._logits = self._logits, None
        if logits is None:
            raise RuntimeError('IPSDistillHook: the decode head produced no logits in this training step')
        labels = torch.cat([sample.gt_sem_seg.data for sample in data_samples])  # (2P, H, W)
        weights = cell_class_counts(labels, logits.shape[-2:], self.num_classes)
        return logits.flatten(2), weights

    def remove(self) -> None:
        self._handle.remove()


def cell_class_counts(labels: Tensor, size: Tuple[int, int], num_classes: int) -> Tensor:
    """How many pixels of each class every cell of a ``size`` logit map covers.

    A pixel belongs to the cell that contains it when the ``(h, w)`` logit map is laid over
    the ``(H, W)`` label map (cell row ``y * h // H``, column ``x * w // W``), as nearest
    upsampling of the logits would assign it. Pixels outside ``[0, K)`` (ignore index,
    padding) count for no class. Weighting a class mean by these counts averages the
    cells' predictions over every pixel of the class, at the logits' resolution, without
    full-resolution logits. One ``index_add_`` into bins laid out per cell; the bins'
    layout is computed once per batch geometry (:func:`_cell_bins`). No host sync.

    Args:
        labels: ``(N, H, W)`` integer label maps.
        size: ``(h, w)`` of the logit map.
        num_classes: K.

    Returns:
        ``(N, h * w, K)`` float32 pixel counts.
    """
    num, height, width = labels.shape
    first_bin, ones = _cell_bins(num, height, width, tuple(size), num_classes, labels.device)
    if labels.dtype != torch.long:
        labels = labels.long()
    # every cell has K + 2 bins: below 0, classes 0 .. K-1, K and above; the outer two are dropped
    index = first_bin + labels.clamp(-1, num_classes)
    counts = torch.zeros(num * size[0] * size[1] * (num_classes + 2), dtype=torch.float32, device=labels.device)
    counts.index_add_(0, index.view(-1), ones)
    return counts.view(num, size[0] * size[1], num_classes + 2)[..., 1:-1]


@functools.lru_cache(maxsize=4)
def _cell_bins(num: int, height: int, width: int, size: Tuple[int, int], num_classes: int,
               device: torch.device) -> Tuple[Tensor, Tensor]:
    """``(N, H, W)`` index of class 0's bin for every pixel's cell (see :func:`cell_class_counts`),
    and ``N * H * W`` ones to count with."""
    cell_h, cell_w = size
    rows = torch.arange(height, device=device) * cell_h // height
    cols = torch.arange(width, device=device) * cell_w // width
    cell = rows[:, None] * cell_w + cols[None, :]  # (H, W)
    images = torch.arange(num, device=device)[:, None, None] * (cell_h * cell_w)
    first_bin = (images + cell) * (num_classes + 2) + 1
    return first_bin, torch.ones((), dtype=torch.float32, device=device).expand(first_bin.numel())
