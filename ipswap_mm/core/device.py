"""Putting tensors on a device: without an operator call when they are already there, and
small constants once per device rather than once per call."""
from __future__ import annotations

import functools
from typing import Tuple, Union

import torch
from torch import Tensor


def to_device(tensor: Tensor, device: Union[str, torch.device]) -> Tensor:
    """``tensor`` on ``device``: itself if it is there (no operator call), else copied without
    waiting for the copy (``non_blocking``; from pageable host memory the copy is staged first)."""
    if tensor.device == torch.device(device):
        return tensor
    return tensor.to(device, non_blocking=True)


@functools.lru_cache(maxsize=32)
def constant(values: Tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A small constant tensor of ``values`` (a tuple) on ``device``, made and copied once per
    ``(values, dtype, device)``: image limits or cell edges, which a step would otherwise
    copy from the host on every call. The result is shared: never write into it."""
    return torch.tensor(values, dtype=dtype, device=device)
