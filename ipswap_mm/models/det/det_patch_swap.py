"""``DetPatchSwap``: intra-class patch swap as an MMDetection batch augmentation."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData
from torch import Tensor

from ...core.device import constant, to_device
from ...core.instance_swap import (
    keep_visible_objects,
    owner_index,
    pair_regions,
    regroup_objects,
    visible_box_parts,
    visible_mask_parts,
)
from ...core.patch_swap import Ratio
from ..pair_swap_batch_aug import PairSwapBatchAug

INSTANCE_FIELDS = ('gt_instances', 'ignored_instances')


def _masks_to_tensor(masks: list, height: int, width: int, device) -> Tensor:
    """Every sample's bitmap or polygon masks -> one ``(n, height, width)`` bool tensor, each
    sample's cropped or zero-padded to the batch size; put together on the host, copied once."""
    arrays = []
    for sample_masks in masks:
        if isinstance(sample_masks, PolygonMasks):
            arrays.append(sample_masks.to_ndarray())
        elif isinstance(sample_masks, BitmapMasks):
            arrays.append(sample_masks.masks)
        else:
            raise TypeError(f'DetPatchSwap: gt_instances.masks of type {type(sample_masks).__name__} is not '
                            'supported (BitmapMasks or PolygonMasks)')
    batch = np.zeros((sum(len(array) for array in arrays), height, width), dtype=bool)
    start = 0
    for array in arrays:
        part = array[:, :height, :width]
        batch[start:start + len(array), :part.shape[1], :part.shape[2]] = part
        start += len(array)
    return to_device(torch.from_numpy(batch), device)


@MODELS.register_module()
class DetPatchSwap(PairSwapBatchAug):
    """Exchange random grid cells between the two images of every pair, objects included.

    Use in MMDetection's ``DetDataPreprocessor(batch_augments=[...])``; it runs after
    padding and normalisation, on the batch's device, and only in training.

    Reads: ``inputs`` ``(2P, C, H, W)``; every data sample's ``gt_instances`` and
    ``ignored_instances`` (``bboxes``, ``labels``, optional ``masks``: bitmap or
    polygon, and any other tensor field, which travels with its object; a field of
    another type is a ``TypeError``), optional ``gt_sem_seg`` (panoptic), and metainfo
    ``img_shape`` (``ips_valid_shape`` where a preprocessor set it; ``img_path`` to name
    an image holding NaN or inf).

    Modifies:

    * ``inputs`` (returned as a new tensor) and ``gt_sem_seg``: pixels exchanged cell by
      cell; cells reaching into either image's padding, and a border strip narrower than
      a cell, are never swapped.
    * ``gt_sem_seg`` (panoptic configs, objects with instance masks): the pixels an object
      dropped by the rule below still shows are set to ``seg_ignore_index``, so that the
      semantic head is not taught a thing the instance heads are taught is not there.
    * Objects: each object stays in its image with the part that was not swapped away,
      and reappears in the partner image with the part that was. Boxes are recomputed
      from the instance masks when there are masks, and otherwise shrunk to the visible
      part of the box; an object that stays untouched or is carried over whole keeps
      its box exactly. An object the swap cuts in two keeps each part only if it has at
      least ``min_visible_area`` pixels and ``min_visible_ratio`` of its full area; an
      object the swap does not cut, left in place or carried whole, is kept as it was,
      whatever its size.
      An object with an empty mask (or, without masks, a box covering no pixel) loses
      nothing: it stays, unchanged, and is never carried over. In a pair that swaps,
      masks come out as ``BitmapMasks`` (polygons are rasterised), at their input size;
      the samples of a pair that swaps no cell are left exactly as they were.

    Adds: metainfo ``ips_pair_index``.

    Args:
        patch_size, swap_prob, swap_ratio, check_finite: see :class:`PairSwapBatchAug`.
        min_visible_area: Pixels each part of an object the swap cuts in two must have (a
            part with no pixel is never kept, so 0 acts as 1).
        min_visible_ratio: Fraction of the object's full area such a part must have.
        seg_ignore_index: Written into ``gt_sem_seg`` over a dropped object's visible
            pixels; MMDetection's panoptic heads ignore 255.
    """

    def __init__(self,
                 patch_size: int = 32,
                 swap_prob: float = 0.5,
                 swap_ratio: Ratio = 0.5,
                 min_visible_area: float = 16.0,
                 min_visible_ratio: float = 0.25,
                 seg_ignore_index: int = 255,
                 check_finite: bool = True) -> None:
        super().__init__(patch_size, swap_prob, swap_ratio, allow_partial_grid=True, check_finite=check_finite)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                      for v in (min_visible_area, min_visible_ratio))
        if not numbers or min_visible_area < 0 or not 0 <= min_visible_ratio <= 1:
            raise ValueError('DetPatchSwap.min_visible_area must be a number >= 0 and min_visible_ratio a number in '
                             f'[0, 1], got {min_visible_area!r} and {min_visible_ratio!r} '
                             '(model.data_preprocessor.batch_augments)')
        self.min_visible_area = float(min_visible_area)
        self.min_visible_ratio = float(min_visible_ratio)
        self.seg_ignore_index = int(seg_ignore_index)

    def forward(self, inputs: Tensor, data_samples: List) -> Tuple[Tensor, List]:
        """Swap ``inputs`` ``(2P, C, H, W)`` and the annotations of ``data_samples`` (2P of them)."""
        self.check_pairs(inputs, data_samples)
        host_cells = self.draw_cells(data_samples, *inputs.shape[-2:])
        has_map = self.batch_has(data_samples, 'gt_sem_seg')
        maps = [sample.gt_sem_seg.sem_seg for sample in data_samples] if has_map else None
        if maps is not None:
            self.check_map_sizes(maps, 'gt_sem_seg', inputs.shape[-2:], 'set model.data_preprocessor.pad_seg=True')
        pairs = self.swapping_pairs(host_cells)
        if not pairs:
            return inputs, data_samples
        cells = to_device(host_cells, inputs.device)
        inputs = self.patch_swap.swap(inputs, cells)
        if maps is not None:
            for sample, swapped_map in zip(data_samples, self.patch_swap.swap(maps, cells)):
                sample.gt_sem_seg.sem_seg = swapped_map
        # the samples of pairs that swap nothing keep their annotations as they are
        samples = [data_samples[2 * pair + side] for pair in pairs for side in (0, 1)]
        if len(pairs) < len(host_cells):
            cells = to_device(host_cells[pairs], inputs.device)
        for field in INSTANCE_FIELDS:
            if self.batch_has(data_samples, field):
                dropped = self._swap_instances(samples, field, cells, *inputs.shape[-2:], maps is not None)
                if dropped is not None:
                    for sample, pixels in zip(samples, dropped):
                        sample.gt_sem_seg.sem_seg = sample.gt_sem_seg.sem_seg.masked_fill(pixels,
                                                                                          self.seg_ignore_index)
        return inputs, data_samples

    def _carried_fields(self, instances: Sequence[InstanceData], field: str) -> List[str]:
        """The instance fields, besides boxes and masks, that travel with their objects (tensors
        only; every sample's ``field`` must hold them)."""
        keys = list(dict.fromkeys(key for inst in instances for key in inst.keys() if key not in ('bboxes', 'masks')))
        for key in keys:
            self.batch_has(instances, key, f'{field} of the pairs that swap')
            if not isinstance(instances[0][key], Tensor):
                raise TypeError(f'DetPatchSwap cannot carry the instance field {key!r} '
                                f'({type(instances[0][key]).__name__}) across a swap')
        return keys

    def _swap_instances(self, data_samples: List, field: str, cells: Tensor, height: int, width: int,
                        mark_dropped: bool = False) -> Optional[Tensor]:
        """Replace ``field`` of every sample by the objects it shows after the swap.

        Args:
            data_samples: The 2Q samples of the Q pairs that swap, pair by pair.
            field: ``'gt_instances'`` or ``'ignored_instances'``.
            cells: ``(Q, Gh, Gw)`` bool, the cells each of these pairs exchanges.
            height, width: Size of the batch tensor.
            mark_dropped: Return the pixels that dropped objects still show.

        Returns:
            With ``mark_dropped``, objects with masks, and some dropped with pixels left:
            ``(2Q, 1, H, W)`` bool, the pixels dropped objects still show in each image.
            Otherwise None.
        """
        device = cells.device
        num_images = 2 * cells.shape[0]
        instances = [getattr(sample, field) for sample in data_samples]
        counts = [len(inst) for inst in instances]
        num = sum(counts)
        if num == 0:
            return None
        box_type = type(instances[0].bboxes)
        plain_boxes = issubclass(box_type, Tensor)
        boxes = to_device(torch.cat([get_box_tensor(inst.bboxes) for inst in instances]), device)
        box_dtype = boxes.dtype  # measured in float32, given back in the input's dtype
        if box_dtype != torch.float32:
            boxes = boxes.float()
        owner = owner_index(counts, device)
        # every object seen through two regions: its own image's stay region, the partner's move region
        seen_through = torch.stack([owner, owner + num_images])  # (2, n)
        with_masks = self.batch_has(instances, 'masks', f'{field} of the pairs that swap')
        # where each sample's own objects stay visible, and where they show in the partner image
        if with_masks:
            regions = pair_regions(self.patch_swap.cells_to_pixels(cells, height, width)).flatten(0, 1)  # (4Q, H, W)
            masks = _masks_to_tensor([inst.masks for inst in instances], height, width, device)
            new_masks, new_boxes, visible, full_area = visible_mask_parts(masks, seen_through, regions)
            # an object that stays untouched, or is carried over whole, keeps its box
            new_boxes = torch.where((visible >= full_area)[..., None], boxes, new_boxes)
        else:  # boxes only: measured on the cells, not the pixels
            grid, row_edges, col_edges = self.patch_swap.cell_grid(cells, height, width)
            new_boxes, visible, full_area = visible_box_parts(boxes, seen_through, pair_regions(grid).flatten(0, 1),
                                                              row_edges, col_edges)
        moved = constant(((False,), (True,)), torch.bool, device)  # (2, 1): row 0 stays, row 1 moves
        keep = keep_visible_objects(visible, full_area, self.min_visible_area, self.min_visible_ratio, moved)
        # one sync: instance counts change
        keep, shown = torch.stack([keep, visible > 0]).cpu().numpy()
        dropped = None
        if mark_dropped and with_masks and (shown & ~keep).any():
            # destination image of each candidate: its owner (row 0), the owner's partner (row 1)
            host_owner = np.repeat(np.arange(num_images), counts)
            rows, indices = np.nonzero(shown & ~keep)
            destination = to_device(torch.from_numpy(np.stack([host_owner, host_owner ^ 1])[rows, indices]), device)
            picked = new_masks[to_device(torch.from_numpy(rows), device), to_device(torch.from_numpy(indices), device)]
            # one scatter for every dropped object: how many cover each pixel of each image
            covered = torch.zeros(num_images, height * width, dtype=torch.int32, device=device)
            covered.index_add_(0, destination, picked.view(len(rows), -1).int())
            dropped = (covered > 0).view(num_images, 1, height, width)
        picks, new_counts = regroup_objects(keep, counts)
        picks = to_device(torch.from_numpy(picks), device)
        sources = picks % num  # the original object of each new one
        fields = {key: torch.cat([getattr(inst, key) for inst in instances])[sources].split(new_counts)
                  for key in self._carried_fields(instances, field)}
        boxes = new_boxes.view(2 * num, 4)[picks].to(box_dtype).split(new_counts)
        masks = None
        if with_masks:
            masks = np.split(new_masks.view(2 * num, height, width)[picks].cpu().numpy(), np.cumsum(new_counts)[:-1])
        for index, (sample, inst) in enumerate(zip(data_samples, instances)):
            result = InstanceData(**{key: values[index] for key, values in fields.items()})
            # rows of a tensor the swap just made, not the input's: no copy needed
            result.bboxes = boxes[index] if plain_boxes else box_type(boxes[index], clone=False)
            if with_masks:
                mask_h, mask_w = inst.masks.height, inst.masks.width
                result.masks = BitmapMasks(masks[index][:, :mask_h, :mask_w].astype(np.uint8), mask_h, mask_w)
            setattr(sample, field, result)
        return dropped
