"""What happens to objects when pixels are swapped: boxes and instance masks.

Pure PyTorch, vectorised over all objects of a batch. After a pair exchanges the pixels
of a mask ``M``, an object of image ``a`` stays visible in ``a`` where ``M`` is False and
reappears in ``b`` where ``M`` is True (and the other way round). For every object and
both destinations this module measures the visible part and its bounding box:

* with an instance mask, the visible part is ``mask & region`` and the box is its
  tight bounding box;
* with a box only, the visible part is ``box & region`` at pixel resolution, and the box
  is the bounding box of that part, never larger than the original box.

A pixel belongs to a box when the box covers part of it (a positive area). A box that
covers no pixel of the image (zero width or height, inverted, or outside the image) has
a full area of 0: it loses nothing, so it stays in its image exactly as it was, and it is
never carried into the partner image.

The keep-or-drop rule, shared by every detector, is :func:`keep_visible_objects`.
"""
from __future__ import annotations

import functools
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .device import constant, to_device


def owner_index(counts: Sequence[int], device: Union[str, torch.device]) -> Tensor:
    """``(sum(counts),)`` long: the image of every object, for objects listed image by image
    (``counts[i]`` of image ``i``). Built by NumPy on the host and copied once, so no device
    work and no sync (a device ``repeat_interleave`` by counts needs the output size)."""
    return to_device(torch.from_numpy(np.repeat(np.arange(len(counts), dtype=np.int64), counts)), device)


def box_pixel_ranges(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(n, 4)`` float ``x1, y1, x2, y2`` -> ``(n, 4)`` long pixel ranges ``c1, r1, c2, r2`` (end
    exclusive), clipped to the ``height x width`` image. A pixel belongs to a box when the
    box covers a positive area of it; a box of zero width or height covers no pixel."""
    limits = constant((width, height, width, height), torch.float64, boxes.device)
    starts = boxes[:, :2].floor()
    # an empty (or inverted) side ends where it starts: no pixel
    ends = torch.where(boxes[:, 2:] > boxes[:, :2], boxes[:, 2:].ceil(), starts)
    ranges = torch.cat([starts, ends], dim=1)
    return torch.minimum(ranges, limits).clamp(min=0).long()


def _first_last(profile: Tensor) -> Tuple[Tensor, Tensor]:
    """First and last index (along the last dim) where ``profile > 0``; garbage where all zero."""
    present = (profile > 0).float()
    length = profile.shape[-1]
    return present.argmax(dim=-1), length - 1 - present.flip(-1).argmax(dim=-1)


def visible_box_parts(boxes: Tensor,
                      image_index: Tensor,
                      regions: Tensor,
                      row_edges: Optional[Sequence[int]] = None,
                      col_edges: Optional[Sequence[int]] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Visible part of every box inside the region of its image.

    The regions may be given per pixel, or on a grid of cells (a patch swap's cells), which
    is exact and costs a cell, not a pixel, per entry: a box's visible area in a region is
    ``sum over cells of rows(box, cell) * cols(box, cell) * region(cell)``, and its visible
    rows and columns are those of the cells it sees.

    Args:
        boxes: ``(n, 4)`` float boxes ``x1, y1, x2, y2``.
        image_index: ``(n,)`` long: which region each box is seen through; or ``(D, n)``:
            the region of each of D destinations (e.g. staying, and carried to the partner).
        regions: ``(R, A, B)`` bool visibility regions: cell ``(a, b)`` covers pixel rows
            ``row_edges[a]`` to ``row_edges[a + 1] - 1`` and the columns alike.
        row_edges, col_edges: ``A + 1`` and ``B + 1`` increasing pixel edges (ints), from 0
            to the image height (width). ``None``: one cell per pixel (``A x B`` = ``H x W``).

    Returns:
        ``new_boxes (..., n, 4)`` (bounding box of the visible pixels, intersected with the
        original box; unchanged where nothing, or every pixel of the box, is visible, so
        an untouched box keeps its exact coordinates even where it reaches outside the
        image), ``visible_area (..., n)`` and ``box_area (n,)``, both in pixels of the
        clipped box; ``...`` is ``image_index``'s leading dim, if any.
    """
    if boxes.shape[0] == 0:
        return boxes.expand(*image_index.shape, 4).clone(), boxes.new_zeros(image_index.shape), boxes.new_zeros(0)
    height = regions.shape[-2] if row_edges is None else row_edges[-1]
    width = regions.shape[-1] if col_edges is None else col_edges[-1]
    row_edges = _edges(row_edges, height, boxes.device)
    col_edges = _edges(col_edges, width, boxes.device)
    c1, r1, c2, r2 = box_pixel_ranges(boxes, height, width).unbind(1)
    # pixels of each box in each cell row (column): (n, A) and (n, B); float64 counts are exact
    rows_in = (torch.minimum(r2[:, None], row_edges[1:]) - torch.maximum(r1[:, None], row_edges[:-1])).clamp(min=0)
    cols_in = (torch.minimum(c2[:, None], col_edges[1:]) - torch.maximum(c1[:, None], col_edges[:-1])).clamp(min=0)
    seen = regions[image_index].double()  # (..., n, A, B)
    # visible pixels on each pixel row of the box in cell row a (each column in cell column b)
    per_row = (seen @ cols_in.double()[:, :, None])[..., 0] * (rows_in > 0)  # (..., n, A)
    per_col = (rows_in.double()[:, None, :] @ seen)[..., 0, :] * (cols_in > 0)  # (..., n, B)
    visible = (per_row * rows_in).sum(-1)
    first_row, last_row = _first_last(per_row)
    first_col, last_col = _first_last(per_col)
    # the first and last cells with visible pixels bound them (and the box itself, below)
    tight = torch.stack([col_edges[first_col], row_edges[first_row], col_edges[last_col + 1], row_edges[last_row + 1]],
                        dim=-1).to(boxes.dtype)
    new_boxes = torch.cat([torch.maximum(boxes[:, :2], tight[..., :2]), torch.minimum(boxes[:, 2:], tight[..., 2:])],
                          -1)
    box_area = ((c2 - c1) * (r2 - r1)).to(visible.dtype)
    partly_visible = (visible > 0) & (visible < box_area)
    new_boxes = torch.where(partly_visible[..., None], new_boxes, boxes)
    return new_boxes, visible.float(), box_area.float()


def _edges(edges: Optional[Sequence[int]], size: int, device: Union[str, torch.device]) -> Tensor:
    """Cell edges as a long tensor on ``device``: one cell per pixel by default; given edges
    are copied from the host once per grid (:func:`~ipswap_mm.core.device.constant`)."""
    if edges is None:
        return torch.arange(size + 1, device=device)
    return constant(tuple(int(edge) for edge in edges), torch.long, torch.device(device))


def visible_mask_parts(masks: Tensor, image_index: Tensor, regions: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Visible part of every instance mask inside the region of its image.

    Args:
        masks: ``(n, H, W)`` bool instance masks.
        image_index: ``(n,)`` or ``(D, n)`` long: which region each mask is seen through
            (see :func:`visible_box_parts`).
        regions: ``(R, H, W)`` bool.

    Returns:
        ``new_masks (..., n, H, W)``, ``new_boxes (..., n, 4)`` (tight boxes of the new
        masks; zero where empty), ``visible_area (..., n)`` and ``mask_area (n,)``.
    """
    new_masks = masks & regions[image_index]
    per_row = _row_counts(new_masks)  # (..., n, H)
    first_row, last_row = _first_last(per_row)
    first_col, last_col = _first_last(new_masks.view(torch.uint8).amax(-2))  # any pixel in each column
    visible = per_row.sum(-1).float()
    boxes = torch.stack([first_col, first_row, last_col + 1, last_row + 1], dim=-1).float()
    boxes = boxes * (visible > 0)[..., None]
    return new_masks, boxes, visible, _row_counts(masks).sum(-1).float()


def _row_counts(masks: Tensor) -> Tensor:
    """``(..., H, W)`` bool -> ``(..., H)`` integer: the True pixels of every row.

    Summed as bytes: first in uint8 over runs of at most 255 pixels (they cannot overflow),
    then the runs' sums into int16 (int32 for rows too wide for it). A bool tensor's ``sum``
    or ``any`` first converts it to int64 or walks it element by element (26 and 20 ms
    against 3.6 for nine 512x512 masks in two regions on one core), and a byte sum into
    int16 converts every pixel first (1.31 ms against 0.23 ms by runs of 128, six 1024x1024
    masks, one core)."""
    width = masks.shape[-1]
    dtype = torch.int16 if width <= torch.iinfo(torch.int16).max else torch.int32
    run = _byte_run(width)
    pixels = masks.view(torch.uint8)
    if run < 16:  # no run length worth it divides the width
        return pixels.sum(-1, dtype=dtype)
    return pixels.reshape(*masks.shape[:-1], width // run, run).sum(-1, dtype=torch.uint8).sum(-1, dtype=dtype)


@functools.lru_cache(maxsize=16)
def _byte_run(width: int) -> int:
    """The longest run of pixels, at most 255, that divides ``width``."""
    return next(run for run in range(min(width, 255), 0, -1) if width % run == 0)


def keep_visible_objects(visible_area: Tensor, full_area: Tensor, min_visible_area: float,
                         min_visible_ratio: float, moved: Union[bool, Tensor]) -> Tensor:
    """Which objects survive a swap.

    An object whose pixels are all where they were, or all carried into the partner image,
    is kept as it was, whatever its size (a swap never changes what it does not cut); a
    carried one must cover a pixel (a zero-area box stays where it was, kept, and is not
    copied into the partner). An object the swap cut in two keeps each part only if it
    has at least ``min_visible_area`` pixels (and at least one: a part with no pixel is never
    kept, whatever the thresholds) and ``min_visible_ratio`` of its full area.

    ``moved``: whether the visible parts were carried to the partner image; a bool tensor
    broadcastable against ``visible_area`` when some were and some were not.
    """
    ratio = visible_area / full_area.clamp(min=1.0)
    large_enough = (visible_area >= max(min_visible_area, 1.0)) & (ratio >= min_visible_ratio)
    whole = visible_area >= full_area
    if moved is True:
        whole = whole & (full_area > 0)
    elif moved is not False:
        whole = whole & ((full_area > 0) | ~moved)
    return large_enough | whole


def regroup_objects(keep: np.ndarray, counts: Sequence[int]) -> Tuple[np.ndarray, List[int]]:
    """Every image's objects after a swap: its own that stay, then its partner's carried in.

    Args:
        keep: ``(2, n)`` bool (host), from :func:`keep_visible_objects`: row 0, each
            object's part left in its image; row 1, its part carried to the partner image.
        counts: Objects of each of the ``2P`` images, listed image by image (``n`` in all);
            images ``2i`` and ``2i + 1`` are partners.

    Returns:
        ``picks`` ``(m,)`` int64, the candidates each image now shows, image by image, as
        indices into the ``2n`` candidates (stay: ``0 .. n-1``, carried: ``n .. 2n-1``), and
        the new number of objects of every image.
    """
    num = len(keep[0])
    starts = np.cumsum([0, *counts])
    picks, new_counts = [], []
    for image in range(len(counts)):
        own = starts[image] + np.flatnonzero(keep[0, starts[image]:starts[image + 1]])
        partner = image ^ 1
        came = num + starts[partner] + np.flatnonzero(keep[1, starts[partner]:starts[partner + 1]])
        picks += [own, came]
        new_counts.append(len(own) + len(came))
    return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, np.int64), new_counts


def pair_regions(pixel_mask: Tensor) -> Tensor:
    """From a pair mask ``(P, H, W)`` (True: exchanged) to per-image regions ``(2, 2P, H, W)``:
    ``[0]``, where an image's own objects stay visible; ``[1]``, where they show in the
    partner image."""
    return torch.stack([~pixel_mask, pixel_mask]).repeat_interleave(2, dim=1)
