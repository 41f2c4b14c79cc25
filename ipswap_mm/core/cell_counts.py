"""Class pixel counts of the cells of a logit map laid over a label map.

Pure PyTorch. A dense head predicts at its own resolution ``(h, w)``, below the label
map's ``(H, W)``; weighting each cell's prediction by how many pixels of each class it
covers gives class means over every labelled pixel without full-resolution logits.
"""
from __future__ import annotations

import functools
from typing import Tuple

import torch
from torch import Tensor


def cell_class_counts(labels: Tensor, size: Tuple[int, int], num_classes: int) -> Tensor:
    """How many pixels of each class every cell of a ``size`` logit map covers.

    A pixel belongs to the cell that contains it when the ``(h, w)`` logit map is laid over
    the ``(H, W)`` label map (cell row ``y * h // H``, column ``x * w // W``), as nearest
    upsampling of the logits would assign it. Pixels outside ``[0, K)`` (ignore index,
    padding) count for no class. Weighting a class mean by these counts averages the
    cells' predictions over every pixel of the class, at the logits' resolution, without
    full-resolution logits. One ``scatter_add_`` into bins laid out per cell; the bins'
    layout is computed once per batch geometry (:func:`_cell_bins`). No host sync.

    Args:
        labels: ``(N, H, W)`` integer label maps.
        size: ``(h, w)`` of the logit map.
        num_classes: K.

    Returns:
        ``(N, h * w, K)`` pixel counts, float64 (exact; the pair KL computes in float64).
    """
    num, height, width = labels.shape
    first_bin, ones = _cell_bins(num, height, width, tuple(size), num_classes, labels.device)
    if labels.dtype != torch.long:
        labels = labels.long()
    # every cell has K + 2 bins: below 0, classes 0 .. K-1, K and above; the outer two are dropped
    index = labels.reshape(num, height * width).clamp(-1, num_classes) + first_bin
    counts = torch.zeros(num, size[0] * size[1] * (num_classes + 2), dtype=torch.float64, device=labels.device)
    counts.scatter_add_(1, index, ones)
    return counts.view(num, size[0] * size[1], num_classes + 2)[..., 1:-1]


@functools.lru_cache(maxsize=4)
def _cell_bins(num: int, height: int, width: int, size: Tuple[int, int], num_classes: int,
               device: torch.device) -> Tuple[Tensor, Tensor]:
    """``(H * W,)`` index of class 0's bin in its image's row of counts for every pixel's cell
    (see :func:`cell_class_counts`), and ``(N, H * W)`` ones to count with (a broadcast
    scalar). Held per batch geometry: one row of pixels, not one per image (the images' rows
    are the counts' first dimension)."""
    cell_h, cell_w = size
    rows = torch.arange(height, device=device) * cell_h // height
    cols = torch.arange(width, device=device) * cell_w // width
    cell = rows[:, None] * cell_w + cols[None, :]  # (H, W)
    first_bin = (cell * (num_classes + 2) + 1).view(-1)
    return first_bin, torch.ones((), dtype=torch.float64, device=device).expand(num, height * width)
