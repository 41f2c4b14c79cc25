from .checkpoint_safety import allow_mmengine_checkpoint_types
from .distill_hook import IPSDistillHook
from .randomness import IterationGenerator

__all__ = ['IPSDistillHook', 'IterationGenerator', 'allow_mmengine_checkpoint_types']
