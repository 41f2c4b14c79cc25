"""Putting a tensor on a device without an operator call when it is already there."""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor


def to_device(tensor: Tensor, device: Union[str, torch.device]) -> Tensor:
    """``tensor`` on ``device``: itself if it is there (no operator call), else copied without
    waiting for the copy (``non_blocking``; from pageable host memory the copy is staged first)."""
    if tensor.device == torch.device(device):
        return tensor
    return tensor.to(device, non_blocking=True)
