"""What the pair KL reads from a model's training step, and which reader fits which model.

A *pair-logits reader* attaches to a model (forward hooks, or a wrapped method for heads
whose training call skips hooks), records the class logits of the training forward, and,
called with the batch's data samples after the forward, returns them with their labels.
There is one reader per model family; :func:`build_pair_logits` picks it.
"""
from __future__ import annotations

from typing import Any, List, Optional, Protocol, Tuple

from torch import Tensor, nn


class PairLogits(Protocol):
    """The contract of every reader (``SegPairLogits``, ``RoIPairLogits``, ``DensePairLogits``,
    ``QueryPairLogits``).

    Attributes:
        num_classes: K, the dataset's classes; logits may carry more channels (a softmax
            over ``K + 1`` with a background or no-object channel).
        use_sigmoid: Whether the model scores classes with independent sigmoids (else a softmax).
    """

    num_classes: int
    use_sigmoid: bool

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """The last training forward's class logits ``(2P, C, M)``, and their labels: class ids
        ``(2P, M)`` (-1 and values outside ``[0, K)``: no class) or class weights
        ``(2P, M, K)``; the input of :func:`~ipswap_mm.core.pair_kl_divergence`. Raises if
        this step produced none."""

    def remove(self) -> None:
        """Undo every hook and wrapper the reader attached; the model is as it was."""


class TrainingOutput:
    """The output a module produced in the current training step, kept until the reader takes it.

    With a ``module``, a forward hook keeps its output whenever it runs in training mode
    (``module.training``); without one, the owner keeps values itself (:meth:`keep`: from a
    wrapped method, for heads whose training call skips hooks). Evaluation forwards keep
    nothing.
    """

    def __init__(self, module: Optional[nn.Module] = None) -> None:
        self.value: Any = None
        self._handle = None if module is None else module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args, output) -> None:
        if module.training:
            self.value = output

    def keep(self, value) -> None:
        self.value = value

    def take(self, what: str):
        """The kept value, cleared for the next step; raises naming ``what`` if none was kept."""
        value, self.value = self.value, None
        if value is None:
            raise RuntimeError(f'IPSDistillHook: {what} in this training step')
        return value

    def remove(self) -> None:
        """Remove the forward hook, if any."""
        if self._handle is not None:
            self._handle.remove()


def build_pair_logits(model: nn.Module) -> PairLogits:
    """The reader that fits ``model``: an MMSegmentation ``EncoderDecoder`` (a decode head),
    a DETR-style detector (a query head), a two-stage detector (an RoI head) or a one-stage
    detector (a dense head); raises ``TypeError`` naming the model type otherwise."""
    if hasattr(model, 'decode_head'):
        from .seg.seg_pair_logits import SegPairLogits
        return SegPairLogits(model)
    from .det.query_pair_logits import QueryPairLogits, query_head
    if query_head(model) is not None:
        return QueryPairLogits(model)
    if getattr(model, 'roi_head', None) is not None:
        from .det.det_pair_logits import RoIPairLogits
        return RoIPairLogits(model)
    if getattr(model, 'bbox_head', None) is not None:
        from .det.det_pair_logits import DensePairLogits
        return DensePairLogits(model)
    raise TypeError(f'IPSDistillHook does not support the model type {type(model).__name__}: expected an '
                    'MMSegmentation EncoderDecoder or an MMDetection two-stage, single-stage or DETR-style detector')
