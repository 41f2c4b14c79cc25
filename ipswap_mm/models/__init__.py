from .pair_kl_loss import PairKLDivLoss
from .pair_swap_batch_aug import PairSwapBatchAug

__all__ = ['PairKLDivLoss', 'PairSwapBatchAug']
