"""Instance-to-instance KL between the two views of each pair, class by class.

Pure PyTorch. The two views of a pair show the same classes in different places, so
position-wise comparison is meaningless. Instead, for every class ``k`` present in both
views, the *class-conditional predictive distribution* of a view is the mean of its
predicted distributions over the elements (pixels, or ground-truth boxes) labelled ``k``.
The view that is more confident on ``k`` (higher mean probability of ``k``, at T = 1) is the
teacher for that class; its distribution is detached, and the student is pulled towards
it with ``T^2 * KL(teacher || student)`` at temperature ``T``.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import torch
from torch import Tensor

from .device import constant

TEACHER_RULES = ('confidence', 'symmetric', 'confident_correct')
WEIGHTINGS = ('classes', 'elements')
# Floor of the probabilities under a log: near the smallest normal float64 (2.2e-308),
# far below what a float64 softmax of logit gaps under 690 resolves to, so a confidently
# wrong student (a 1e-20, or at T = 0.1 a 1e-130) still gets its exact loss and gradient (a
# floor of 1e-100 flattened both from a gap of 23 at T = 0.1; 1e-12 at T = 1); and
# 1 / p <= 1e300 stays finite through the sums of the gradient (weights and shares <= 1).
_EPS = 1e-300


def class_weights(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``(N, M, K)`` weight of every element in every class's mean.

    Args:
        labels: ``(N, M)`` integer class of each element, whose one-hot is returned
            (values outside ``[0, K)``, the ignore index and padding, weigh nothing in any
            class); or ``(N, M, K)`` floating-point weights, returned as they are.
        num_classes: K.
        dtype: Floating-point type of the result.
    """
    if labels.dim() == 3:
        return labels if labels.dtype == dtype else labels.to(dtype)
    return (labels.unsqueeze(-1) == _class_ids(num_classes, labels.device)).to(dtype)


def _class_ids(num_classes: int, device: torch.device) -> Tensor:
    """``(K,)`` 0 .. K-1: cached per device, but made in the graph under ``torch.compile``
    (``compile=True``), which does not trace through the cache."""
    if torch.compiler.is_compiling():
        return torch.arange(num_classes, device=device)
    return constant(tuple(range(num_classes)), torch.long, device)


def class_shares(weights: Tensor) -> Tuple[Tensor, Tensor]:
    """``(N, M, K)`` share of every element in its class's mean (columns sum to 1, or are 0
    for an absent class), and the total weights ``(N, 1, K)``.

    ``torch.bmm(probs, shares)`` is then the ``(N, C, K)`` mean distribution of every class
    over its elements, for ``probs`` ``(N, C, M)`` and ``weights`` from :func:`class_weights`.
    """
    counts = weights.sum(1, keepdim=True)  # (N, 1, K)
    # the floor only keeps an absent class's 0 / 0 at 0: a class whose weights total less
    # than 1 (fractional weights) is still a distribution
    return weights / counts.clamp(min=torch.finfo(weights.dtype).tiny), counts


def _to_probs(logits: Tensor, use_sigmoid: bool) -> Tensor:
    return logits.sigmoid() if use_sigmoid else logits.softmax(dim=1)


def _kl_from_partner(means: Tensor, absent_means: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """KL(partner || view) of every view's class means ``(P, 2, C, K)``, the partner (the
    other view of the pair) taken as fixed; for sigmoids (``absent_means``, the class means
    of ``1 - p``, computed as those of ``sigmoid(-z)``: ``1 - means`` rounds to 0 once a
    sigmoid saturates, at ``z`` of 37 in float64), the Bernoulli KLs over (p, 1 - p), summed.

    Returns:
        ``kl (P, 2, K)``, which rounding can leave a hair below 0 (the caller clamps it),
        and ``pull (P, 2, C, K)``, minus its derivative with respect to the view's means
        (for sigmoids, the means of ``1 - p`` counted negatively): ``q / m``, zero where
        ``m`` is below the floor of the logs, as a clamp's gradient is.
    """
    if absent_means is not None:  # each sigmoid is a distribution over (p, 1 - p): one KL over both
        means = torch.stack((means, absent_means), 2)  # (P, 2, 2, C, K)
    probs = means.clamp(_EPS, 1.0)
    log_probs = probs.log()
    partner = probs.flip(1)
    kl = (partner * (log_probs.flip(1) - log_probs)).sum(tuple(range(2, means.dim() - 1)))
    pull = partner / probs * (means >= _EPS)
    if absent_means is not None:
        pull_present, pull_absent = pull.unbind(2)
        pull = pull_present - pull_absent
    return kl, pull


def _student_weight(plain_means: Tensor, counts: Tensor, teacher: str) -> Tensor:
    """``(P, 2, K)``: which view of a pair is the student of each class (1, or 1/2 each
    under ``'symmetric'``), from the class means at T = 1 ``(2P, C, K)`` and the class
    weights ``(2P, 1, K)`` of both views; 0 where a class is not shared by the pair."""
    num_classes = counts.shape[-1]
    # a class is shared when both views weigh it (weights are >= 0): 1.0 or 0.0, (P, 1, K)
    shared = counts.view(-1, 2, num_classes).amin(1, keepdim=True).sign()
    if teacher == 'symmetric':  # both views, each half
        return (shared / 2).expand(-1, 2, -1)
    # confidence[p, v, k]: mean probability of class k over the elements labelled k
    confidence = plain_means.diagonal(dim1=1, dim2=2).view(-1, 2, num_classes)
    teacher_view = confidence.argmax(1, keepdim=True)  # (P, 1, K); a tie: the first view
    weight = torch.zeros_like(confidence).scatter_(1, 1 - teacher_view, shared)
    if teacher == 'confident_correct':  # the teacher's class mean for k predicts k
        correct = plain_means.argmax(1) == _class_ids(num_classes, plain_means.device)  # (2P, K)
        weight = weight * correct.view(-1, 2, num_classes).flip(1)
    return weight


class _PairKL(torch.autograd.Function):
    """The pair KL, with its gradient computed in the forward pass, as a fused
    cross-entropy does. Written out, the chain rule through the KL, the class means and
    the softmax (or sigmoids) is about ten operations; autograd dispatched about thirty
    for it (every view, transpose and cast of the forward has its backward node). The
    backward pass scales it by the incoming gradient and casts it to the logits' dtype.
    The gradient is that of the KL before its clamp at 0, which only rounds away values a
    hair below zero.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, num_classes: int, temperature: float, teacher: str,
                use_sigmoid: bool, weighting: str, loss_weight: float) -> Tensor:
        values = logits if logits.dtype == torch.float64 else logits.double()
        shares, counts = class_shares(class_weights(labels, num_classes, values.dtype))  # (N, M, K), (N, 1, K)
        tempered = values if temperature == 1 else values / temperature  # at T = 1 (the default) no division
        probs = _to_probs(tempered, use_sigmoid)  # (N, C, M)
        means = torch.bmm(probs, shares)  # (N, C, K)
        absent = (-tempered).sigmoid() if use_sigmoid else None  # 1 - probs, exact when saturated
        absent_means = torch.bmm(absent, shares) if use_sigmoid else None
        plain_means = means if temperature == 1 else torch.bmm(_to_probs(values, use_sigmoid), shares)
        weight = _student_weight(plain_means, counts, teacher)  # (P, 2, K)
        if weighting == 'elements':  # each term by the student view's elements of the class
            weight = weight * counts.view_as(weight)
        # every view is compared with its partner; ``weight`` keeps the student's comparisons
        pair_view = (-1, 2, *means.shape[1:])
        kl, pull = _kl_from_partner(means.view(pair_view), absent_means.view(pair_view) if use_sigmoid else None)
        # the weighted mean over (pair, shared class); 0 where no class is shared
        weight = weight / weight.sum().clamp(min=torch.finfo(weight.dtype).tiny)
        # the loss weight joins T^2 in one Python number: no operation of its own, nor in the gradient
        loss = (kl.clamp_min(0.0) * weight).sum() * (loss_weight * temperature**2)
        if ctx.needs_input_grad[0]:
            # d loss / d values = -T * pulls (times the loss weight), by the chain rule: loss = T^2 * sum(weight * KL),
            # d KL / d means = -pull, means = probs @ shares, probs = softmax(values / T) over C
            # (or sigmoid): the pull on every probability, then through the softmax's (sigmoid's)
            # own backward, one kernel each
            pulls = torch.bmm((weight.unsqueeze(2) * pull).view_as(means), shares.transpose(1, 2))  # (N, C, M)
            if use_sigmoid:  # sigmoid'(z) = p (1 - p), with 1 - p exact
                pulls = pulls * probs * absent
            else:
                pulls = torch._softmax_backward_data(pulls, probs, 1, probs.dtype)
            # kept in float64 until the incoming gradient (with an fp16 loss scale) is applied:
            # cast first, the small gradients of near-equal views would flush to zero in fp16
            ctx.save_for_backward(pulls)
            ctx.gradient_scale, ctx.dtype = -temperature * loss_weight, logits.dtype
        return loss.float()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], None, None, None, None, None, None, None]:
        pulls, = ctx.saved_tensors
        d_logits = (pulls * (grad * ctx.gradient_scale)).to(ctx.dtype)
        return d_logits, None, None, None, None, None, None, None


def pair_kl_divergence(logits: Tensor,
                       labels: Tensor,
                       num_classes: int,
                       temperature: float = 1.0,
                       teacher: str = 'confidence',
                       use_sigmoid: bool = False,
                       weighting: str = 'elements',
                       loss_weight: float = 1.0) -> Tensor:
    """Class-wise KL between the two views of every pair.

    Args:
        logits: ``(2P, C, M)`` per-element class logits; items ``2i`` and ``2i + 1`` are the
            two views of pair ``i``. Computed in float64 whatever the input dtype
            (see the note below).
        labels: ``(2P, M)`` class of each element (outside ``[0, K)`` is ignored), or
            ``(2P, M, K)`` non-negative class weights of each element, e.g. how many
            pixels of each class a cell of a low-resolution logit map covers (an
            element's weight for class k is how much it counts in class k's mean).
        num_classes: K, the number of label classes. Softmax logits have ``C >= K`` (a
            background column may follow); sigmoid logits have ``C == K``.
        temperature: T; the loss is scaled by ``T^2``.
        teacher: ``'confidence'``: per pair and class, the view with the higher mean
            probability of that class (at T = 1) teaches the other, detached.
            ``'symmetric'``: both directions, each with the other side detached, averaged.
            ``'confident_correct'``: as ``'confidence'``, but a class counts only where the
            teacher's class mean predicts that class (its arg-max is ``k``): a teacher
            that is wrong about the class teaches nothing (ours; the paper does not say).
        use_sigmoid: Treat the C logits as independent sigmoids (dense detectors).
        weighting: How the (pair, class) terms are averaged. ``'elements'``: each counts
            by the student view's total weight of the class (its pixels, or boxes), so
            that every element counts once, as in the task loss, and a class of a few
            pixels gets a few pixels' share. ``'classes'``: each counts the same, whatever
            its size (ours, both; the paper does not say).
        loss_weight: Multiplier of the result (and of its gradient), folded into the
            ``T^2`` factor at no extra operation. 1.0 here, the plain KL; the training
            default is :class:`PairKLDivLoss`'s (0.1).

    Returns:
        Scalar (float32): ``loss_weight`` times the mean over (pair, shared class) of
        ``T^2 * KL``, weighted as ``weighting`` says; zero (with a graph)
        when no class is shared by the two views of any pair.

    Precision: the probabilities, their class means and the KL are float64: ``2P x C x M``
    values, 0.38 million for DeepLabV3 on VOC (4 x 512x512, 21 classes, logits at 1/8),
    10 million (76 MB) for a 150-class ADE20K head at 1/4 resolution, far fewer for
    detection; on GPUs with slow float64 (consumer cards) that is milliseconds a step. In
    float32 the KL of near-equal views (an untrained model) rounds to 0; float64 cannot
    restore what fp16 or bf16 logits (AMP) have already rounded away. A sigmoid's ``1 - p`` is
    ``sigmoid(-z)``: ``1 - p`` rounds to 0 from ``z = 37`` even in float64.
    """
    if not torch.compiler.is_compiling():  # checked once, eagerly; traced, a temperature may be symbolic
        check_pair_kl_options(temperature, loss_weight, teacher, weighting)
    if logits.dim() != 3 or labels.shape not in ((logits.shape[0], logits.shape[2]),
                                                 (logits.shape[0], logits.shape[2], num_classes)):
        raise ValueError(f'expected logits (2P, C, M) and labels (2P, M) or class weights (2P, M, K={num_classes}), '
                         f'got {tuple(logits.shape)} and {tuple(labels.shape)}')
    if labels.dim() == 3 and not labels.is_floating_point():
        raise ValueError(f'class weights (2P, M, K) must be floating point, got {labels.dtype}')
    if logits.shape[0] % 2:
        raise ValueError(f'logits hold {logits.shape[0]} items, not whole pairs')
    if logits.shape[1] < num_classes:
        raise ValueError(f'{logits.shape[1]} logit channels cannot cover {num_classes} classes')
    if use_sigmoid and logits.shape[1] != num_classes:
        raise ValueError(f'sigmoid logits need one channel per class ({num_classes}), got {logits.shape[1]}')

    return _PairKL.apply(logits, labels, num_classes, temperature, teacher, use_sigmoid, weighting, loss_weight)


def check_pair_kl_options(temperature: float, loss_weight: float, teacher: str, weighting: str,
                          owner: str = '') -> None:
    """Raise ``ValueError`` naming the option (prefixed by ``owner``) that
    :func:`pair_kl_divergence` cannot use: a temperature of 0 gives NaN, a negative one or a
    negative weight a loss that pushes the two views apart."""
    def number(value) -> bool:  # Python and NumPy numbers; not bools
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)

    if not (number(temperature) and temperature > 0):
        raise ValueError(f'{owner}temperature must be a positive number, got {temperature!r}')
    if not (number(loss_weight) and loss_weight >= 0):
        raise ValueError(f'{owner}loss_weight must be a number >= 0, got {loss_weight!r}')
    if teacher not in TEACHER_RULES:
        raise ValueError(f'{owner}teacher must be one of {TEACHER_RULES}, got {teacher!r}')
    if weighting not in WEIGHTINGS:
        raise ValueError(f'{owner}weighting must be one of {WEIGHTINGS}, got {weighting!r}')
