"""``PairKLDivLoss``: the registered form of :func:`ipswap_mm.core.pair_kl_divergence`."""
from __future__ import annotations

from typing import Optional, Union

import torch
from mmengine.registry import MODELS
from torch import Tensor, nn

from ..core.pair_kl import check_pair_kl_options, pair_kl_divergence


@MODELS.register_module()
class PairKLDivLoss(nn.Module):
    """Class-wise KL between the two views of every pair (instance-to-instance distillation).

    Args:
        temperature: Softening temperature T; the KL is scaled by ``T^2``. 1.0 by default
            (ours; CS-KD, the nearest published pair distillation, uses 4): on the digits
            benchmarks continued from a trained checkpoint, T = 1 gained more than T = 4 in
            segmentation and in detection (the README's efficacy results).
        loss_weight: Multiplier of the loss (and its gradient; no operation of its own).
            0.1 by default (ours): on the digits benchmarks continued from a trained
            checkpoint, weight 1 cost about 10 points of mIoU and of mAP, and at 0.1 IPS was
            above the baseline in segmentation and detection (the README's efficacy results).
        teacher: ``'confidence'`` (per pair and class, the more confident view teaches,
            detached), ``'symmetric'`` (both directions, averaged) or ``'confident_correct'``
            (as ``'confidence'``, only for classes whose teacher mean predicts the class).
        use_sigmoid: ``None`` (default): score classes as the model's classifier does
            (sigmoids for most dense detectors, a softmax otherwise). ``True`` or ``False``
            only assert it: a value the classifier does not match is an error.
        weighting: ``'elements'`` (each shared class of a pair counts by its pixels, or
            boxes, in the student view, so every element counts once, as in the task loss)
            or ``'classes'`` (every shared class counts the same).
        loss_name: Key of the loss in the loss dict; must contain ``'loss'`` for MMEngine
            to add it to the total.
        compile: Run the pair KL through ``torch.compile`` (``True``, or a dict of its
            arguments, e.g. ``dict(mode='max-autotune-no-cudagraphs')``): its forward and
            gradient, about 45 small operations, become five fused kernels and three
            matrix products, for steps whose pace the host sets. The first step compiles
            (seconds); a new input shape (detection: another number of boxes) compiles once
            more, then shapes are dynamic. ``False`` (default): eager, as the rest of the model.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 0.1,
                 teacher: str = 'confidence',
                 use_sigmoid: Optional[bool] = None,
                 weighting: str = 'elements',
                 loss_name: str = 'loss_ips_kl',
                 compile: Union[bool, dict] = False) -> None:
        super().__init__()
        check_pair_kl_options(temperature, loss_weight, teacher, weighting, owner='PairKLDivLoss.')
        if use_sigmoid is not None and not isinstance(use_sigmoid, bool):
            raise ValueError(f'PairKLDivLoss.use_sigmoid must be None, True or False, got {use_sigmoid!r}')
        if 'loss' not in loss_name:
            raise ValueError(f"PairKLDivLoss.loss_name must contain 'loss' to be optimised, got {loss_name!r}")
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)
        self.teacher = teacher
        self.use_sigmoid = use_sigmoid
        self.weighting = weighting
        self.loss_name = loss_name
        if not isinstance(compile, (bool, dict)):
            raise ValueError(f'PairKLDivLoss.compile must be a bool or a dict of torch.compile arguments, '
                             f'got {compile!r}')
        # not ``self.compile``: that would hide ``nn.Module.compile`` on this module
        self.compile_options = compile
        self._kl_divergence = pair_kl_divergence
        if compile is not False:
            self._kl_divergence = torch.compile(pair_kl_divergence, **({} if compile is True else compile))

    def forward(self, logits: Tensor, labels: Tensor, num_classes: int, model_uses_sigmoid: bool = False) -> Tensor:
        """Args: logits ``(2P, C, M)``; labels ``(2P, M)`` class ids or ``(2P, M, K)`` class
        weights (see ``pair_kl_divergence``); whether the model scores classes with sigmoids."""
        self.check_scoring(model_uses_sigmoid)
        return self._kl_divergence(logits, labels, num_classes, self.temperature, self.teacher, model_uses_sigmoid,
                                   self.weighting, self.loss_weight)

    def check_scoring(self, model_uses_sigmoid: bool) -> None:
        """Raise if ``use_sigmoid`` was set and the model's classifier scores classes otherwise."""
        if self.use_sigmoid is not None and self.use_sigmoid != model_uses_sigmoid:
            raise ValueError(f'PairKLDivLoss.use_sigmoid={self.use_sigmoid} (custom_hooks) but the model scores '
                             f"classes with {'sigmoids' if model_uses_sigmoid else 'a softmax'}; leave use_sigmoid "
                             'unset')

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, loss_weight={self.loss_weight}, teacher={self.teacher!r}, '
                f'use_sigmoid={self.use_sigmoid}, weighting={self.weighting!r}, compile={self.compile_options!r}')
