"""``SegPatchSwap``: intra-class patch swap as an MMSegmentation batch augmentation."""
from __future__ import annotations

from typing import List, Tuple

from mmseg.registry import MODELS
from torch import Tensor

from ...core.device import to_device
from ..pair_swap_batch_aug import PairSwapBatchAug

PIXEL_MAP_KEYS = ('gt_sem_seg', 'gt_edge_map', 'gt_depth_map')


@MODELS.register_module()
class SegPatchSwap(PairSwapBatchAug):
    """Exchange random grid cells between the two images of every pair, labels included.

    Use in ``BatchAugSegDataPreProcessor(batch_augments=[...])``; it runs after padding
    and normalisation, on the batch's device, and only in training.

    Reads: ``inputs`` ``(2P, C, H, W)``; every data sample's ``gt_sem_seg`` (and
    ``gt_edge_map``/``gt_depth_map`` when present) ``(1, H, W)`` and metainfo ``img_shape``.

    Modifies: ``inputs`` (returned as a new tensor) and those pixel maps (replaced): in
    every swapped cell the two images of a pair exchange pixels and labels together.
    When no pair swaps a cell, both are returned as they came.
    Cells reaching into either image's padding are never swapped.

    Adds: metainfo ``ips_pair_index``.

    Args: see :class:`PairSwapBatchAug`.
    """

    def forward(self, inputs: Tensor, data_samples: List) -> Tuple[Tensor, List]:
        host_cells = self.sample_cells(inputs, data_samples)
        maps = {key: [getattr(sample, key).data for sample in data_samples]
                for key in PIXEL_MAP_KEYS if key in data_samples[0]}
        for key, key_maps in maps.items():
            self.check_map_sizes(key_maps, key, inputs.shape[-2:], 'pad both to the same size')
        if not self.swapping_pairs(host_cells):
            return inputs, data_samples
        cells = to_device(host_cells, inputs.device)
        inputs = self.swap.swap(inputs, cells)
        for key, key_maps in maps.items():
            for sample, swapped in zip(data_samples, self.swap.swap(key_maps, cells)):
                getattr(sample, key).data = swapped
        return inputs, data_samples
