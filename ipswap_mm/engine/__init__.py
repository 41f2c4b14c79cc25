from .checkpoint_safety import make_weights_only_safe, restore_history_buffers, trusted_checkpoint_globals
from .distill_hook import IPSDistillHook
from .randomness import IterationGenerator

__all__ = ['IPSDistillHook', 'IterationGenerator', 'make_weights_only_safe', 'restore_history_buffers',
           'trusted_checkpoint_globals']
