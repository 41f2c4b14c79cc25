"""Replace one module's method by a wrapper on the instance, and restore it.

Forward hooks do not fire when a module calls its own method directly (an RoI head calls
``self._bbox_forward``, K-Net's decode head ``self.forward``), so the pair-logit readers
set their wrapper as an instance attribute instead. The module's class, parameters and
``state_dict`` are untouched; :func:`unwrap_method` deletes the attribute, and the class's
method is visible again.
"""
from __future__ import annotations

from typing import Callable

from torch import nn


def wrap_method(module: nn.Module, name: str, wrapper: Callable) -> Callable:
    """Make ``module.<name>`` call ``wrapper``; return the method it had, for the wrapper to call."""
    original = getattr(module, name)
    setattr(module, name, wrapper)
    return original


def unwrap_method(module: nn.Module, name: str, wrapper: Callable) -> None:
    """Undo :func:`wrap_method` (nothing if ``module.<name>`` is no longer ``wrapper``)."""
    if module.__dict__.get(name) == wrapper:
        delattr(module, name)
