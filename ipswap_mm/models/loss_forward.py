"""Recognise a model's training ``forward(inputs, data_samples, mode='loss')`` call from a hook."""
from __future__ import annotations

from typing import List, Optional

from torch import nn


def loss_call_samples(model: nn.Module, args: tuple, kwargs: dict) -> Optional[List]:
    """The data samples of a training-mode ``forward(inputs, data_samples, mode='loss')`` call
    seen by a forward (pre-)hook registered ``with_kwargs=True``; ``None`` for any other call."""
    mode = kwargs.get('mode', args[2] if len(args) > 2 else 'tensor')
    if mode != 'loss' or not model.training:
        return None
    return kwargs.get('data_samples', args[1] if len(args) > 1 else None)
