"""``BatchAugSegDataPreProcessor``: ``SegDataPreProcessor`` whose ``batch_augments`` work."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..pair_swap_batch_aug import VALID_SHAPE_KEY


def mark_pipeline_padding(data_samples: Sequence, pad_value: int) -> None:
    """Give every sample the training pipeline padded the metainfo ``ips_valid_shape``.

    A ``Pad`` in the pipeline (``pascal_voc12_aug.py`` pads every crop to 512x512) reports
    the padded size as ``img_shape``, and the swap would take its padding for image. It
    pads at the bottom and right, labels with ``pad_value``; ``ips_valid_shape`` ends after
    the last row and column holding another label, so trailing rows and columns that are
    all padding (or all ignored) are never swapped. Read on the host before the batch
    goes to its device: no device work, no sync. Samples without ``pad_shape`` (the
    pipeline did not pad) are left alone.
    """
    for sample in data_samples:
        if 'pad_shape' not in sample.metainfo or 'gt_sem_seg' not in sample:
            continue
        labeled = sample.gt_sem_seg.data[0].cpu().numpy() != pad_value  # (H, W); NumPy: 10x torch's CPU any()
        sample.set_metainfo({VALID_SHAPE_KEY: (_extent(labeled.any(1)), _extent(labeled.any(0)))})


def _extent(flags: np.ndarray) -> int:
    """``(L,)`` bool -> 1 + the index of the last ``True``; 0 when there is none."""
    positions = np.flatnonzero(flags)
    return int(positions[-1]) + 1 if len(positions) else 0


class BatchAugmentSequence(nn.Module):
    """Apply built batch augmentations one after the other: ``(inputs, data_samples)`` in and out."""

    def __init__(self, augments: Sequence[nn.Module]) -> None:
        super().__init__()
        self.augments = nn.ModuleList(augments)

    def forward(self, inputs: Tensor, data_samples: List) -> Tuple[Tensor, List]:
        for augment in self.augments:
            inputs, data_samples = augment(inputs, data_samples)
        return inputs, data_samples


@MODELS.register_module()
class BatchAugSegDataPreProcessor(SegDataPreProcessor):
    """MMSegmentation's ``SegDataPreProcessor`` with ``batch_augments`` built from config.

    MMSegmentation 1.2.2 stores the ``batch_augments`` configs unbuilt and then calls the
    list, which fails; this subclass builds them (``MODELS.build``) and applies them in
    order during training. In training with batch augmentations it also marks, on the
    host, where the pipeline padded each sample (:func:`mark_pipeline_padding`, with
    ``seg_pad_val``). Everything else is inherited unchanged, so a checkpoint's keys are
    those of the stock preprocessor (it has no parameters).

    Reads (training with batch augmentations only, before ``SegDataPreProcessor``'s own
    work): every data sample's ``gt_sem_seg`` ``(1, H, W)`` and metainfo ``pad_shape``.

    Adds: metainfo ``ips_valid_shape`` ``(h, w)`` to every sample with ``pad_shape``.

    Then, as ``SegDataPreProcessor``: the batch is normalised and padded; in training the
    batch augmentations run on it, each reading and writing what its own docstring lists.

    Args:
        batch_augments: Configs of batch augmentations, e.g. ``[dict(type='SegPatchSwap')]``.
        **kwargs: ``SegDataPreProcessor`` arguments.
    """

    marks_pipeline_padding = True  # the swap then keeps the pipeline's padding out (IPSDistillHook reads it)

    def __init__(self, batch_augments: Optional[List[dict]] = None, **kwargs) -> None:
        super().__init__(batch_augments=None, **kwargs)
        if not batch_augments:
            return
        # Build in the mmseg scope whatever the current default scope is (a process that
        # also ran an MMDetection job has 'mmdet' as default scope).
        augments = [MODELS.build({'_scope_': 'mmseg', **cfg}) for cfg in batch_augments]
        for index, augment in enumerate(augments):
            if self.size is not None and hasattr(augment, 'check_input_size'):
                augment.check_input_size(self.size, f'model.data_preprocessor.size; '
                                         f'batch_augments[{index}].patch_size')
        self.batch_augments = BatchAugmentSequence(augments)

    def forward(self, data: dict, training: bool = False) -> dict:
        if training and self.batch_augments is not None:
            mark_pipeline_padding(data.get('data_samples') or (), self.seg_pad_val)
        return super().forward(data, training)
