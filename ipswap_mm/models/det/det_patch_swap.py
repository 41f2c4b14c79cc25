"""``DetPatchSwap``: intra-class patch swap as an MMDetection batch augmentation."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData
from torch import Tensor

from ...core.instance_swap import keep_visible_objects, pair_regions, visible_box_parts, visible_mask_parts
from ...core.patch_swap import Ratio
from ..pair_swap_batch_aug import PairSwapBatchAug

INSTANCE_FIELDS = ('gt_instances', 'ignored_instances')


def _masks_to_tensor(masks, height: int, width: int, device) -> Tensor:
    """Bitmap or polygon masks -> ``(n, height, width)`` bool tensor (cropped or zero-padded)."""
    if isinstance(masks, PolygonMasks):
        array = masks.to_ndarray()
    elif isinstance(masks, BitmapMasks):
        array = masks.masks
    else:
        raise TypeError(f'DetPatchSwap: gt_instances.masks of type {type(masks).__name__} is not supported '
                        '(BitmapMasks or PolygonMasks)')
    tensor = torch.from_numpy(np.ascontiguousarray(array[:, :height, :width])).to(device).bool()
    return F.pad(tensor, (0, width - tensor.shape[2], 0, height - tensor.shape[1]))


@MODELS.register_module()
class DetPatchSwap(PairSwapBatchAug):
    """Exchange random grid cells between the two images of every pair, objects included.

    Use in MMDetection's ``DetDataPreprocessor(batch_augments=[...])``; it runs after
    padding and normalisation, on the batch's device, and only in training.

    Reads: ``inputs`` ``(2P, C, H, W)``; every data sample's ``gt_instances`` and
    ``ignored_instances`` (``bboxes``, ``labels``, optional ``masks``: bitmap or
    polygon), optional ``gt_sem_seg`` (panoptic), and metainfo ``img_shape``.

    Modifies:

    * ``inputs`` (returned as a new tensor) and ``gt_sem_seg``: pixels exchanged cell by
      cell; cells reaching into either image's padding, and a border strip narrower than
      a cell, are never swapped.
    * Objects: each object stays in its image with the part that was not swapped away,
      and reappears in the partner image with the part that was. Boxes are recomputed
      from the instance masks when there are masks, and otherwise shrunk to the visible
      part of the box; an object that stays untouched or is carried over whole keeps
      its box exactly. An object that lost pixels, or was carried over, is kept only if
      its visible part has at least ``min_visible_area`` pixels and ``min_visible_ratio``
      of its full area; an object the swap does not touch is left exactly as it was.
      An object with an empty mask (or, without masks, a box covering no pixel) loses
      nothing: it stays, unchanged, and is never carried over. In a pair that swaps,
      masks come out as ``BitmapMasks`` (polygons are rasterised), at their input size;
      the samples of a pair that swaps no cell are left exactly as they were.

    Adds: metainfo ``ips_pair_index``.

    Args:
        patch_size, swap_prob, swap_ratio, check_finite: see :class:`PairSwapBatchAug`.
        min_visible_area: Pixels an object that lost pixels or moved must keep.
        min_visible_ratio: Fraction of its full area such an object must keep.
    """

    def __init__(self,
                 patch_size: int = 32,
                 swap_prob: float = 0.5,
                 swap_ratio: Ratio = 0.5,
                 min_visible_area: float = 16.0,
                 min_visible_ratio: float = 0.25,
                 check_finite: bool = True) -> None:
        super().__init__(patch_size, swap_prob, swap_ratio, allow_partial_grid=True, check_finite=check_finite)
        if min_visible_area < 0 or not 0 <= min_visible_ratio <= 1:
            raise ValueError('DetPatchSwap.min_visible_area must be >= 0 and min_visible_ratio in [0, 1], got '
                             f'{min_visible_area!r} and {min_visible_ratio!r}')
        self.min_visible_area = float(min_visible_area)
        self.min_visible_ratio = float(min_visible_ratio)

    def forward(self, inputs: Tensor, data_samples: List) -> Tuple[Tensor, List]:
        """Swap ``inputs`` ``(2P, C, H, W)`` and the annotations of ``data_samples`` (2P of them)."""
        cells = self.sample_cells(inputs, data_samples)
        swapped = cells.flatten(1).any(1).tolist()  # one sync: which pairs change at all
        if not any(swapped):
            return inputs, data_samples
        inputs = self.swap.swap(inputs, cells)
        if 'gt_sem_seg' in data_samples[0]:
            maps = [sample.gt_sem_seg.sem_seg for sample in data_samples]
            self.check_map_sizes(maps, 'gt_sem_seg', inputs.shape[-2:], 'set model.data_preprocessor.pad_seg=True')
            for sample, swapped_map in zip(data_samples, self.swap.swap(maps, cells)):
                sample.gt_sem_seg.sem_seg = swapped_map
        # the samples of pairs that swap nothing keep their annotations as they are
        pairs = [pair for pair, changed in enumerate(swapped) if changed]
        samples = [data_samples[2 * pair + side] for pair in pairs for side in (0, 1)]
        stay, move = pair_regions(self.swap.cells_to_pixels(cells[pairs], *inputs.shape[-2:]))
        for field in INSTANCE_FIELDS:
            if field in data_samples[0]:
                self._swap_instances(samples, field, stay, move)
        return inputs, data_samples

    def _swap_instances(self, data_samples: List, field: str, stay: Tensor, move: Tensor) -> None:
        """Replace ``field`` of every sample by the objects it shows after the swap.

        Args:
            data_samples: The 2Q samples of the Q pairs that swap, pair by pair.
            field: ``'gt_instances'`` or ``'ignored_instances'``.
            stay, move: ``(2Q, H, W)`` bool regions (see ``pair_regions``).
        """
        device = stay.device
        height, width = stay.shape[-2:]
        instances = [getattr(sample, field) for sample in data_samples]
        counts = [len(inst) for inst in instances]
        box_type = type(instances[0].bboxes)
        boxes = torch.cat([_box_tensor(inst.bboxes) for inst in instances]).to(device).float()
        image_index = torch.repeat_interleave(torch.arange(len(instances), device=device),
                                              torch.tensor(counts, device=device))
        with_masks = 'masks' in instances[0]
        if with_masks:
            masks = torch.cat([_masks_to_tensor(inst.masks, height, width, device) for inst in instances])
            stay_masks, stay_boxes, stay_area, full_area = visible_mask_parts(masks, image_index, stay)
            move_masks, move_boxes, move_area, _ = visible_mask_parts(masks, image_index, move)
            # an object that stays untouched, or is carried over whole, keeps its box
            stay_boxes = torch.where((stay_area >= full_area)[:, None], boxes, stay_boxes)
            move_boxes = torch.where((move_area >= full_area)[:, None], boxes, move_boxes)
        else:
            stay_masks = move_masks = None
            stay_boxes, stay_area, full_area = visible_box_parts(boxes, image_index, stay)
            move_boxes, move_area, _ = visible_box_parts(boxes, image_index, move)
        keep_stay = keep_visible_objects(stay_area, full_area, self.min_visible_area, self.min_visible_ratio,
                                         moved=False)
        keep_move = keep_visible_objects(move_area, full_area, self.min_visible_area, self.min_visible_ratio,
                                         moved=True)
        keep_stay, keep_move = torch.stack([keep_stay, keep_move]).cpu()  # one sync: instance counts change
        starts = np.cumsum([0] + counts)
        for index, (sample, inst) in enumerate(zip(data_samples, instances)):
            partner = index ^ 1
            own = torch.arange(starts[index], starts[index + 1])[keep_stay[starts[index]:starts[index + 1]]]
            came = torch.arange(starts[partner], starts[partner + 1])[keep_move[starts[partner]:starts[partner + 1]]]
            setattr(sample, field, _gather_instances(
                [instances[i] for i in (index, partner)], [own - starts[index], came - starts[partner]],
                torch.cat([stay_boxes[own.to(device)], move_boxes[came.to(device)]]), box_type,
                None if not with_masks else torch.cat([stay_masks[own.to(device)], move_masks[came.to(device)]]),
                inst.masks if with_masks else None))


def _box_tensor(boxes) -> Tensor:
    return boxes.tensor if hasattr(boxes, 'tensor') else boxes


def _gather_instances(sources: List[InstanceData], picks: List[Tensor], boxes: Tensor, box_type,
                      masks: Optional[Tensor], like_masks) -> InstanceData:
    """New instances: ``sources[0][picks[0]]`` then ``sources[1][picks[1]]``, with new boxes/masks."""
    result = InstanceData()
    for key in sources[0].keys():
        if key in ('bboxes', 'masks'):
            continue
        values = [getattr(src, key) for src in sources]
        if not isinstance(values[0], Tensor):
            raise TypeError(f'DetPatchSwap cannot carry the instance field {key!r} '
                            f'({type(values[0]).__name__}) across a swap')
        result[key] = torch.cat([v[p.to(v.device)] for v, p in zip(values, picks)])
    result.bboxes = boxes if box_type is Tensor or issubclass(box_type, Tensor) else box_type(boxes)
    if masks is not None:
        height, width = like_masks.height, like_masks.width
        result.masks = BitmapMasks(masks[:, :height, :width].cpu().numpy().astype(np.uint8), height, width)
    return result
