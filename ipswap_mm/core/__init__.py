"""The method itself, free of OpenMMLab imports: pairing, swap geometry, the pair KL."""
from .label_edges import label_edges
from .pair_kl import TEACHER_RULES, class_shares, class_weights, pair_kl_divergence
from .pairing import PAIR_KEYS, PairingStats, build_intra_class_pairs
from .patch_swap import PatchSwap, pair_valid_hw, swap_pairs

__all__ = [
    'PAIR_KEYS', 'TEACHER_RULES', 'PairingStats', 'PatchSwap', 'build_intra_class_pairs',
    'class_shares', 'class_weights', 'label_edges', 'pair_kl_divergence', 'pair_valid_hw', 'swap_pairs'
]
