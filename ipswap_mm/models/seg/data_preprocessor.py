"""``BatchAugSegDataPreProcessor``: ``SegDataPreProcessor`` whose ``batch_augments`` work."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS
from torch import Tensor, nn


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
    order during training. Everything else is inherited unchanged, so a checkpoint's
    keys are those of the stock preprocessor (it has no parameters).

    Args:
        batch_augments: Configs of batch augmentations, e.g. ``[dict(type='SegPatchSwap')]``.
        **kwargs: ``SegDataPreProcessor`` arguments.
    """

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
