"""``SegPatchSwap``: intra-class patch swap as an MMSegmentation batch augmentation."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from mmseg.registry import MODELS
from torch import Tensor

from ...core.device import to_device
from ...core.label_edges import label_edges
from ...core.patch_swap import Ratio
from ..pair_swap_batch_aug import PairSwapBatchAug

PIXEL_MAP_KEYS = ('gt_sem_seg', 'gt_depth_map')
EDGE_MAP_KEY = 'gt_edge_map'


@MODELS.register_module()
class SegPatchSwap(PairSwapBatchAug):
    """Exchange random grid cells between the two images of every pair, labels included.

    Use in ``BatchAugSegDataPreProcessor(batch_augments=[...])``; it runs after padding
    and normalisation, on the batch's device, and only in training.

    Reads: ``inputs`` ``(2P, C, H, W)``; every data sample's ``gt_sem_seg`` (and
    ``gt_depth_map``, ``gt_edge_map`` when present) ``(1, H, W)`` and metainfo ``img_shape``
    and, where the pipeline padded, ``ips_valid_shape`` (``BatchAugSegDataPreProcessor``);
    ``img_path`` to name an image holding NaN or inf.

    Modifies: ``inputs`` (returned as a new tensor), ``gt_sem_seg`` and ``gt_depth_map``
    (replaced): in every swapped cell the two images of a pair exchange pixels and labels
    together. ``gt_edge_map`` (``GenerateEdge``, PIDNet) is drawn again from the swapped
    ``gt_sem_seg`` inside each image (:func:`~ipswap_mm.core.label_edges.label_edges`): the
    seams of swapped cells make class edges, and edges along them may be gone. When no
    pair swaps a cell, everything is returned as it came. Cells reaching into either image's
    padding are never swapped.

    Adds: metainfo ``ips_pair_index``.

    Args:
        patch_size, swap_prob, swap_ratio, allow_partial_grid, check_finite: see
            :class:`PairSwapBatchAug`.
        edge_width, edge_ignore_index: Those of the training pipeline's ``GenerateEdge``,
            needed when the batch has ``gt_edge_map``. ``edge_width=None`` (default):
            ``IPSDistillHook`` sets both from the pipeline; a batch with edge maps and no
            ``edge_width`` is an error.
    """

    def __init__(self,
                 patch_size: int = 32,
                 swap_prob: float = 0.5,
                 swap_ratio: Ratio = 0.5,
                 allow_partial_grid: bool = False,
                 check_finite: bool = True,
                 edge_width: Optional[int] = None,
                 edge_ignore_index: int = 255) -> None:
        super().__init__(patch_size, swap_prob, swap_ratio, allow_partial_grid, check_finite)
        if edge_width is not None and (isinstance(edge_width, bool) or not isinstance(edge_width, int)
                                       or edge_width < 1):
            raise ValueError(f'SegPatchSwap.edge_width must be a positive int (GenerateEdge\'s), got {edge_width!r}')
        self.edge_width = edge_width
        self.edge_ignore_index = edge_ignore_index

    def forward(self, inputs: Tensor, data_samples: List) -> Tuple[Tensor, List]:
        self.check_pairs(inputs, data_samples)
        host_cells = self.draw_cells(data_samples, *inputs.shape[-2:])
        maps = {key: [getattr(sample, key).data for sample in data_samples]
                for key in (*PIXEL_MAP_KEYS, EDGE_MAP_KEY) if self.batch_has(data_samples, key)}
        for key, key_maps in maps.items():
            self.check_map_sizes(key_maps, key, inputs.shape[-2:], 'pad both to the same size')
        edge_maps = maps.pop(EDGE_MAP_KEY, None)
        if edge_maps is not None and self.edge_width is None:
            raise ValueError('SegPatchSwap: the batch has gt_edge_map (GenerateEdge) but no edge_width: set '
                             "model.data_preprocessor.batch_augments' SegPatchSwap edge_width (and "
                             "edge_ignore_index) to GenerateEdge's, or train with IPSDistillHook, which reads them "
                             'from the training pipeline')
        if not self.swapping_pairs(host_cells):
            return inputs, data_samples
        cells = to_device(host_cells, inputs.device)
        inputs = self.patch_swap.swap(inputs, cells)
        for key, key_maps in maps.items():
            for sample, swapped in zip(data_samples, self.patch_swap.swap(key_maps, cells)):
                getattr(sample, key).data = swapped
        if edge_maps is not None:
            self._redraw_edges(data_samples, edge_maps, inputs.shape[-2:])
        return inputs, data_samples

    def _redraw_edges(self, data_samples: List, edge_maps: List[Tensor], size: Tuple[int, int]) -> None:
        """``gt_edge_map`` from the swapped ``gt_sem_seg`` inside each image's ``img_shape``, as
        ``GenerateEdge`` sees the image (the padding is no class); the padding keeps its value."""
        labels = torch.stack([sample.gt_sem_seg.data[0] for sample in data_samples])  # (2P, H, W)
        rows = torch.arange(size[0], device=labels.device)
        cols = torch.arange(size[1], device=labels.device)
        shapes = [tuple(sample.metainfo.get('img_shape', size))[:2] for sample in data_samples]
        inside = torch.stack([(rows[:, None] < height) & (cols[None, :] < width) for height, width in shapes])
        edges = label_edges(labels.masked_fill(~inside, self.edge_ignore_index), self.edge_width,
                            self.edge_ignore_index)
        for sample, old, new, image in zip(data_samples, edge_maps, edges, inside):
            sample.gt_edge_map.data = torch.where(image, new.to(old.dtype), old)
