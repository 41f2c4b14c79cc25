"""MMSegmentation adapters (registered in ``mmseg.registry.MODELS``)."""
from .data_preprocessor import BatchAugSegDataPreProcessor
from .seg_pair_logits import SegPairLogits
from .seg_patch_swap import SegPatchSwap

__all__ = ['BatchAugSegDataPreProcessor', 'SegPairLogits', 'SegPatchSwap']
