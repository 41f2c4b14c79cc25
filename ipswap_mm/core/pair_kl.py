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
    # one-hot over K + 2 slots: below 0, the K classes, K and above; the outer two are dropped
    return F.one_hot(labels.long().clamp(-1, num_classes) + 1, num_classes + 2)[..., 1:-1].to(dtype)


def class_means(probs: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
    """Weighted mean predicted distribution of each class.

    Args:
        probs: ``(N, C, M)`` per-element distributions (softmax over C, or C sigmoids).
        weights: ``(N, M, K)`` from :func:`class_weights`.

    Returns:
        ``means (N, K, C)`` (zero for absent classes) and total weights ``counts (N, K)``.
    """
    shares, counts = _class_shares(weights)
    return torch.bmm(shares, probs.transpose(1, 2)), counts


def _class_shares(weights: Tensor) -> Tuple[Tensor, Tensor]:
    """``(N, K, M)`` share of every element in its classes' means (rows sum to 1, or are 0
    for an absent class), and the total weights ``(N, K)``."""
    counts = weights.sum(1, keepdim=True)  # (N, 1, K)
    return (weights / counts.clamp(min=1)).transpose(1, 2), counts[:, 0]


def _to_probs(logits: Tensor, use_sigmoid: bool) -> Tensor:
    return logits.sigmoid() if use_sigmoid else logits.softmax(dim=1)


def _kl_from_partner(means: Tensor, use_sigmoid: bool) -> Tensor:
    """``(P, 2, K)``: KL(partner || view) of every view's class means ``(P, 2, K, C)``, the
    partner (the other view of the pair) detached; Bernoulli terms summed for sigmoids.

    In float64, as all of the pair KL: for the near-equal distributions of an untrained
    model (a dense head's sigmoids all near its prior) the KL is 1e-9 or less, below the
    rounding error of float32 logs, which made it come out as 0 or negative. A KL is never
    negative; what rounding leaves below zero is clamped at 0.
    """
    probs = means.clamp(_EPS, 1.0)
    log_probs = probs.log()
    partner, partner_log = probs.detach().flip(1), log_probs.detach().flip(1)
    kl = partner * (partner_log - log_probs)
    if use_sigmoid:
        rest = (1 - means).clamp(_EPS, 1.0)
        log_rest = rest.log()
        kl = kl + rest.detach().flip(1) * (log_rest.detach().flip(1) - log_rest)
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
    shares, counts = _class_shares(class_weights(labels, num_classes, logits.dtype))  # (N, K, M), (N, K)
    means = torch.bmm(shares, _to_probs(logits / temperature, use_sigmoid).transpose(1, 2))  # (N, K, C)
    with torch.no_grad():
        plain_means = means if temperature == 1 else torch.bmm(shares, _to_probs(logits, use_sigmoid).transpose(1, 2))
        # confidence[n, k]: mean probability of class k over the elements labelled k.
        confidence = plain_means.diagonal(dim1=1, dim2=2).unflatten(0, (-1, 2))  # (P, 2, K)
        shared = (counts > 0).unflatten(0, (-1, 2)).all(1, keepdim=True)  # (P, 1, K)
        # which view of a pair is the student of each class: weight[p, v, k]
        if teacher == 'symmetric':  # both views, each half
            weight = shared.expand(-1, 2, -1).to(means.dtype) / 2
        else:
            first_teaches = confidence[:, :1] >= confidence[:, 1:]  # (P, 1, K); a tie: the first view
            weight = torch.cat([~first_teaches, first_teaches], 1) & shared
            if teacher == 'confident_correct':  # the teacher's class mean for k predicts k
                correct = plain_means.argmax(-1) == torch.arange(num_classes, device=plain_means.device)
                weight &= correct.unflatten(0, (-1, 2)).flip(1)
            weight = weight.to(means.dtype)
    # every view is compared with its partner; ``weight`` keeps the student's comparisons
    kl = _kl_from_partner(means.unflatten(0, (-1, 2)), use_sigmoid)  # (P, 2, K)
    return (temperature**2 * (kl * weight).sum() / weight.sum().clamp(min=1.0)).float()
