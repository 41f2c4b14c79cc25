"""Instance-to-instance KL between the two views of each pair, class by class.

Pure PyTorch. The two views of a pair show the same classes in different places, so
position-wise comparison is meaningless. Instead, for every class ``k`` present in both
views, the *class-conditional predictive distribution* of a view is the mean of its
predicted distributions over the elements (pixels, or ground-truth boxes) labelled ``k``.
The view that is more confident on ``k`` (higher mean probability of ``k``) is the
teacher for that class; its distribution is detached, and the student is pulled towards
it with ``T^2 * KL(teacher || student)`` at temperature ``T``.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

TEACHER_RULES = ('confidence', 'symmetric', 'confident_correct')
# Floor of the probabilities under a log: far below what a float64 softmax resolves in
# practice (e^-230), so a student that gives a class 1e-20 still gets its gradient (a
# floor of 1e-12 cut it off, and under-stated the KL, at low temperatures), and far above
# 1e-308, so 1 / p stays finite.
_EPS = 1e-100


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
        return labels.to(dtype)
    valid = (labels >= 0) & (labels < num_classes)
    return F.one_hot(labels.masked_fill(~valid, 0).long(), num_classes).to(dtype) * valid[..., None]


def class_means(probs: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
    """Weighted mean predicted distribution of each class.

    Args:
        probs: ``(N, C, M)`` per-element distributions (softmax over C, or C sigmoids).
        weights: ``(N, M, K)`` from :func:`class_weights`.

    Returns:
        ``means (N, K, C)`` (zero for absent classes) and total weights ``counts (N, K)``.
    """
    counts = weights.sum(1)
    return torch.bmm(weights.transpose(1, 2), probs.transpose(1, 2)) / counts.clamp(min=1)[..., None], counts


def _to_probs(logits: Tensor, use_sigmoid: bool) -> Tensor:
    return logits.sigmoid() if use_sigmoid else logits.softmax(dim=1)


def _kl(teacher: Tensor, student: Tensor, use_sigmoid: bool) -> Tensor:
    """KL(teacher || student) along the last dim; Bernoulli terms summed for sigmoids.

    In float64, as all of the pair KL (the inputs are ``(P, K, C)`` class means):
    for the near-equal distributions of an untrained model (a dense head's sigmoids all
    near its prior) the KL is 1e-9 or less, below the rounding error of float32 logs, which
    made it come out as 0 or negative. A KL is never negative; what rounding leaves below
    zero is clamped at 0.
    """
    teacher = teacher.clamp(_EPS, 1.0)
    log_ratio = teacher.log() - student.clamp(_EPS, 1.0).log()
    kl = teacher * log_ratio
    if use_sigmoid:
        teacher_neg = (1 - teacher).clamp(_EPS, 1.0)
        kl = kl + teacher_neg * (teacher_neg.log() - (1 - student).clamp(_EPS, 1.0).log())
    return kl.sum(-1).clamp_min(0.0)


def pair_kl_divergence(logits: Tensor,
                       labels: Tensor,
                       num_classes: int,
                       temperature: float = 4.0,
                       teacher: str = 'confidence',
                       use_sigmoid: bool = False) -> Tensor:
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

    Returns:
        Scalar (float32): mean over (pair, shared class) of ``T^2 * KL``; zero (with a graph)
        when no class is shared by the two views of any pair.

    Precision: the probabilities, their class means and the KL are float64 (a few hundred
    thousand values for a segmentation batch, far fewer for detection). In float32,
    ``1 - p`` of a saturated sigmoid keeps only a few digits (1e-3 relative error at
    ``p = 0.9999``), and the KL of near-equal views (an untrained model) rounds to 0.
    """
    if teacher not in TEACHER_RULES:
        raise ValueError(f'teacher must be one of {TEACHER_RULES}, got {teacher!r}')
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

    logits = logits.double()
    weights = class_weights(labels, num_classes, logits.dtype)  # shared by both class means below
    means, counts = class_means(_to_probs(logits / temperature, use_sigmoid), weights)
    with torch.no_grad():
        plain_means = means if temperature == 1 else class_means(_to_probs(logits, use_sigmoid), weights)[0]
        # confidence[n, k]: mean probability of class k over the elements labelled k.
        confidence = plain_means.diagonal(dim1=1, dim2=2)  # (N, K)
        if teacher == 'confident_correct':  # correct[n, k]: the view's class mean for k predicts k
            correct = plain_means.argmax(-1) == torch.arange(num_classes, device=plain_means.device)

    means = means.unflatten(0, (-1, 2))  # (P, 2, K, C)
    counts = counts.unflatten(0, (-1, 2))
    confidence = confidence.unflatten(0, (-1, 2))
    shared = (counts[:, 0] > 0) & (counts[:, 1] > 0)  # (P, K)

    first, second = means[:, 0], means[:, 1]
    if teacher == 'symmetric':
        kl = 0.5 * (_kl(first.detach(), second, use_sigmoid) + _kl(second.detach(), first, use_sigmoid))
    else:
        first_teaches = (confidence[:, 0] >= confidence[:, 1])[..., None]  # (P, K, 1)
        kl = _kl(torch.where(first_teaches, first, second).detach(), torch.where(first_teaches, second, first),
                 use_sigmoid)
        if teacher == 'confident_correct':
            correct = correct.unflatten(0, (-1, 2))
            shared = shared & torch.where(first_teaches[..., 0], correct[:, 0], correct[:, 1])

    shared_f = shared.to(kl.dtype)
    total = (kl * shared_f).sum()
    return (temperature**2 * total / shared_f.sum().clamp(min=1.0)).float()
