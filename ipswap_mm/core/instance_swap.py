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

from typing import Sequence, Tuple, Union

import torch
from torch import Tensor


def owner_index(counts: Sequence[int], device: Union[str, torch.device]) -> Tensor:
    """``(sum(counts),)`` long: the image of every object, for objects listed image by image
    (``counts[i]`` of image ``i``). Built on the host and copied once, so no device work and
    no sync (a device ``repeat_interleave`` by counts needs the output size)."""
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long)).to(
        device, non_blocking=True)


def box_pixel_ranges(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(n, 4)`` float ``x1, y1, x2, y2`` -> ``(n, 4)`` long pixel ranges ``c1, r1, c2, r2`` (end
    exclusive), clipped to the ``height x width`` image. A pixel belongs to a box when the
    box covers a positive area of it; a box of zero width or height covers no pixel."""
    limits = boxes.new_tensor([width, height, width, height])
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


def visible_box_parts(boxes: Tensor, image_index: Tensor, regions: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Visible part of every box inside the region of its image.

    Args:
        boxes: ``(n, 4)`` float boxes ``x1, y1, x2, y2``.
        image_index: ``(n,)`` long: which region each box is seen through; or ``(D, n)``:
            the region of each of D destinations (e.g. staying, and carried to the partner).
        regions: ``(R, H, W)`` bool visibility regions.

    Returns:
        ``new_boxes (..., n, 4)`` (bounding box of the visible pixels, intersected with the
        original box; unchanged where nothing, or every pixel of the box, is visible, so
        an untouched box keeps its exact coordinates even where it reaches outside the
        image), ``visible_area (..., n)`` and ``box_area (n,)``, both in pixels of the
        clipped box; ``...`` is ``image_index``'s leading dim, if any.
    """
    num, (height, width) = boxes.shape[0], regions.shape[-2:]
    if num == 0:
        return boxes.expand(*image_index.shape, 4).clone(), boxes.new_zeros(image_index.shape), boxes.new_zeros(0)
    c1, r1, c2, r2 = box_pixel_ranges(boxes, height, width).unbind(1)
    region = regions.to(torch.int32)
    along_x = torch.nn.functional.pad(region.cumsum(2), (1, 0))  # (R, H, W + 1)
    along_y = torch.nn.functional.pad(region.cumsum(1), (0, 0, 1, 0))  # (R, H + 1, W)
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    # visible pixels of each box, row by row and column by column
    row_profile = (along_x[image_index, :, c2] - along_x[image_index, :, c1])  # (..., n, H)
    row_profile = row_profile * ((rows >= r1[:, None]) & (rows < r2[:, None]))
    col_profile = (along_y[image_index, r2, :] - along_y[image_index, r1, :])  # (..., n, W)
    col_profile = col_profile * ((cols >= c1[:, None]) & (cols < c2[:, None]))
    visible = row_profile.sum(-1).float()
    first_row, last_row = _first_last(row_profile)
    first_col, last_col = _first_last(col_profile)
    tight = torch.stack([first_col, first_row, last_col + 1, last_row + 1], dim=-1).to(boxes.dtype)
    new_boxes = torch.cat([torch.maximum(boxes[:, :2], tight[..., :2]), torch.minimum(boxes[:, 2:], tight[..., 2:])],
                          -1)
    box_area = ((c2 - c1) * (r2 - r1)).float()
    partly_visible = (visible > 0) & (visible < box_area)
    new_boxes = torch.where(partly_visible[..., None], new_boxes, boxes)
    return new_boxes, visible, box_area


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
    first_row, last_row = _first_last(new_masks.any(-1))
    first_col, last_col = _first_last(new_masks.any(-2))
    visible = new_masks.flatten(-2).sum(-1).float()
    boxes = torch.stack([first_col, first_row, last_col + 1, last_row + 1], dim=-1).float()
    boxes = boxes * (visible > 0)[..., None]
    return new_masks, boxes, visible, masks.flatten(1).sum(1).float()


def keep_visible_objects(visible_area: Tensor, full_area: Tensor, min_visible_area: float,
                         min_visible_ratio: float, moved: Union[bool, Tensor]) -> Tensor:
    """Which objects survive a swap.

    An object that stays in its image and loses no pixel is kept as it was, whatever its
    size (the swap never changes what it does not touch). An object that lost pixels, or
    one carried into the partner image, is kept only if its visible part has at least
    ``min_visible_area`` pixels and ``min_visible_ratio`` of its full area.

    ``moved``: whether the visible parts were carried to the partner image; a bool tensor
    broadcastable against ``visible_area`` when some were and some were not.
    """
    ratio = visible_area / full_area.clamp(min=1.0)
    large_enough = (visible_area >= max(min_visible_area, 1.0)) & (ratio >= min_visible_ratio)
    if moved is True:
        return large_enough
    untouched = visible_area >= full_area
    return large_enough | (untouched if moved is False else untouched & ~moved)


def pair_regions(pixel_mask: Tensor) -> Tensor:
    """From a pair mask ``(P, H, W)`` (True: exchanged) to per-image regions ``(2, 2P, H, W)``:
    ``[0]``, where an image's own objects stay visible; ``[1]``, where they show in the
    partner image."""
    return torch.stack([~pixel_mask, pixel_mask]).repeat_interleave(2, dim=1)
