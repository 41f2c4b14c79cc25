"""MMDetection adapters (registered in ``mmdet.registry.MODELS``)."""
from .det_pair_logits import DensePairLogits, RoIPairLogits
from .det_patch_swap import DetPatchSwap

__all__ = ['DensePairLogits', 'DetPatchSwap', 'RoIPairLogits']
