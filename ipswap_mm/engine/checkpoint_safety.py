"""Checkpoints that ``torch.load(weights_only=True)`` can read.

PyTorch 2.6 made ``weights_only=True`` the default of ``torch.load``. MMEngine 0.10.7
calls ``torch.load`` without the argument, and its checkpoints hold the message hub's
``HistoryBuffer`` objects (pickled with ``getattr`` references) and NumPy values, so the
stock ``test.py`` and ``--resume`` fail with ``Unsupported global: ...HistoryBuffer``.

Two remedies, neither of which turns the check off globally:

* :func:`make_weights_only_safe` rewrites a checkpoint before it is saved: history
  buffers become plain dicts of tensors, other NumPy values become Python values, and functions in
  parameter-scheduler states (``OneCycleLR``'s ``anneal_func``, which the scheduler sets
  again from its config when it is built) are left out. Checkpoints written
  under ``IPSDistillHook`` are made this way, and :func:`restore_history_buffers` turns
  them back when MMEngine resumes from them.
* :func:`trusted_checkpoint_globals` allow-lists what other MMEngine checkpoints need,
  for the duration of a ``with`` block: the project's tools use it around the run, for
  the checkpoint the user names, as MMEngine loaded them before torch 2.6. ``getattr``,
  which a ``HistoryBuffer`` pickles its statistics methods with, is allowed only as
  :func:`history_buffer_getattr`: the real one would let a crafted file reach any
  object (``getattr(getattr, '__self__')`` is the ``builtins`` module) and run code.
"""
from __future__ import annotations

import contextlib
import inspect
import pickle
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

BUFFER_MARKER = '__ipswap_history_buffer__'


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays (also nested in dicts, lists and tuples) -> Python values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def _history(values: Any) -> Any:
    """A history buffer's values as a tensor (a run keeps up to a million values a key: the
    weights-only unpickler reads a tensor at once, a list of floats value by value, which
    took 23 s for a RetinaNet run's seven keys); not numeric: Python values."""
    array = np.asarray(values)
    if array.dtype.kind in 'biuf':
        return torch.from_numpy(array.copy())
    return _plain(values)


def make_weights_only_safe(checkpoint: dict) -> dict:
    """Rewrite ``checkpoint['message_hub']``, ``['meta']`` and ``['param_schedulers']`` in place (see module doc)."""
    hub = checkpoint.get('message_hub')
    if isinstance(hub, dict) and 'log_scalars' in hub:
        hub['log_scalars'] = {
            key: {BUFFER_MARKER: True, 'log': _history(buffer._log_history), 'count': _history(buffer._count_history),
                  'max_length': int(buffer.max_length)} if isinstance(buffer, HistoryBuffer) else _plain(buffer)
            for key, buffer in hub['log_scalars'].items()
        }
        hub['runtime_info'] = _plain(hub.get('runtime_info', {}))
    if 'meta' in checkpoint:
        checkpoint['meta'] = _plain(checkpoint['meta'])
    schedulers = checkpoint.get('param_schedulers')
    groups = schedulers.values() if isinstance(schedulers, dict) else [schedulers or []]
    for states in groups:
        for state in states:
            for key in [key for key, value in state.items() if inspect.isroutine(value)]:
                del state[key]  # a copy of the scheduler's __dict__: the live scheduler keeps it
    return checkpoint


def restore_history_buffers(checkpoint: dict) -> dict:
    """Undo :func:`make_weights_only_safe` for the message hub, in place."""
    hub = checkpoint.get('message_hub')
    if isinstance(hub, dict) and isinstance(hub.get('log_scalars'), dict):
        for key, value in hub['log_scalars'].items():
            if isinstance(value, dict) and value.get(BUFFER_MARKER):
                # on the device MMEngine's resume loads to (a GPU); lists before 2026-11-25
                log, count = (item.cpu().numpy() if torch.is_tensor(item) else item
                              for item in (value['log'], value['count']))
                hub['log_scalars'][key] = HistoryBuffer(log, count, value['max_length'])
    return checkpoint


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for the unpickler, as an MMEngine checkpoint uses it: a method of
    ``HistoryBuffer`` (its statistics, ``getattr(HistoryBuffer, 'mean')``); anything else is
    refused. Its own public functions, not ``_statistics_methods``: MMEngine fills that
    registry when the first buffer is made, which a fresh process loading a checkpoint has not."""
    if ((obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and not name.startswith('_')
            and inspect.isfunction(HistoryBuffer.__dict__.get(name))):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'the checkpoint asks for getattr({type(obj).__name__}, {name!r}); an MMEngine '
                                 'checkpoint only needs the methods of HistoryBuffer')


def mmengine_checkpoint_globals() -> list:
    """Globals an MMEngine 0.10 checkpoint pickles besides tensors; NumPy's array and scalar
    rebuilders also under the module path a checkpoint written under NumPy 1.x names."""
    multiarray = getattr(np, '_core', np.core).multiarray
    rebuilders = [multiarray._reconstruct, multiarray.scalar]
    numpy1_names = [(function, f'numpy.core.multiarray.{function.__name__}') for function in rebuilders]
    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr'), np.ndarray, np.dtype, *rebuilders,
            *numpy1_names,
            *{type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'int32', 'bool')}]


@contextlib.contextmanager
def trusted_checkpoint_globals() -> Iterator[None]:
    """Inside the block, ``torch.load(weights_only=True)`` also accepts MMEngine checkpoints."""
    if not hasattr(torch.serialization, 'safe_globals'):
        yield
        return
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        yield
