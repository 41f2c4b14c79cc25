"""Let ``torch.load(weights_only=True)`` read MMEngine 0.10 checkpoints.

PyTorch 2.6 made ``weights_only=True`` the default of ``torch.load``. MMEngine 0.10.7
calls ``torch.load`` without the argument and its checkpoints hold a ``HistoryBuffer``
(message hub) and NumPy scalars and arrays, so ``--resume`` and ``tools/test.py`` fail
with ``Unsupported global: mmengine.logging.history_buffer.HistoryBuffer``. Importing
``ipswap_mm`` allow-lists exactly those types with ``torch.serialization.add_safe_globals``;
it does not turn the weights-only check off.
"""
from __future__ import annotations

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def allow_mmengine_checkpoint_types() -> None:
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return  # torch < 2.4 loads everything anyway
    dtype_classes = [type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'int32', 'bool')]
    reconstruct = np.core.multiarray._reconstruct if hasattr(np, 'core') else None
    torch.serialization.add_safe_globals([HistoryBuffer, np.ndarray, np.dtype, *dtype_classes,
                                          np.float64, np.float32, np.int64, np.int32, np.bool_,
                                          *( [reconstruct] if reconstruct else [])])
