"""MMDetection adapters (registered in ``mmdet.registry.MODELS``)."""
from .det_pair_logits import DensePairLogits, RoIPairLogits
from .det_patch_swap import DetPatchSwap
from .query_pair_logits import QueryPairLogits

__all__ = ['DensePairLogits', 'DetPatchSwap', 'QueryPairLogits', 'RoIPairLogits']
