"""The method itself, free of OpenMMLab imports: pairing, swap geometry, object bookkeeping,
the pair KL."""
from .cell_counts import cell_class_counts
from .label_edges import label_edges
from .pair_kl import TEACHER_RULES, WEIGHTINGS, pair_kl_divergence
from .pairing import PAIR_KEYS, ClassSets, PairingStats, build_intra_class_pairs
from .patch_swap import PatchSwap, pair_valid_hw, swap_pairs

__all__ = [
    'PAIR_KEYS', 'TEACHER_RULES', 'WEIGHTINGS', 'ClassSets', 'PairingStats', 'PatchSwap', 'build_intra_class_pairs',
    'cell_class_counts', 'label_edges', 'pair_kl_divergence', 'pair_valid_hw', 'swap_pairs'
]
