"""Intra-class pairing of a dataset for one epoch.

Pure NumPy. Input: the foreground classes of every image (and how much of each it
holds). Output: ``ceil(N / 2)`` pairs of image indices whose two images share a class.

The rule, step by step:

1. Every image gets a *pairing key*: one of its classes (``'random'``: drawn for this
   epoch, weighted equally; ``'dominant'``: the class it holds most of). Images with no
   foreground class share the key ``-1`` (background only).
2. Images are shuffled, grouped by key and paired two by two inside each group.
3. The odd image out of a group (a *leftover*) is paired with another leftover it shares
   a class with, if any; otherwise with a random other image that shares one of its
   classes (that image then appears twice this epoch); otherwise, when no other image
   holds any of its classes (a class with a single image), with itself. A self-pair has
   no swap to make and contributes no distillation signal; it is counted.
4. Exactly ``ceil(N / 2)`` pairs are kept per epoch so that an epoch always has the same
   length: pairs of two fresh images are always kept; pairs with a repeated partner or a
   self-pair fill the rest in random order, and the surplus (fewer than the number of
   keys) is dropped for this epoch only, and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

PAIR_KEYS = ('random', 'dominant')


@dataclass
class PairingStats:
    """What one epoch's pairing had to do besides plain same-key pairs."""

    num_images: int = 0
    num_pairs: int = 0
    leftovers: int = 0
    repeated: int = 0
    self_pairs: int = 0
    dropped: int = 0
    background_only: int = 0


def pairing_keys(class_sets: Sequence[np.ndarray], rng: np.random.Generator, rule: str) -> np.ndarray:
    """One key per image: a class from its set (see module doc), or -1 if the set is empty.

    ``class_sets[i]`` lists image i's classes, most prominent first.
    """
    if rule not in PAIR_KEYS:
        raise ValueError(f'pair_key must be one of {PAIR_KEYS}, got {rule!r}')
    lengths = np.fromiter((len(c) for c in class_sets), dtype=np.int64, count=len(class_sets))
    keys = np.full(len(class_sets), -1, dtype=np.int64)
    draws = rng.random(len(class_sets))
    for i, classes in enumerate(class_sets):
        if lengths[i]:
            keys[i] = classes[0] if rule == 'dominant' else classes[int(draws[i] * lengths[i])]
    return keys


def build_intra_class_pairs(class_sets: Sequence[np.ndarray],
                            rng: np.random.Generator,
                            rule: str = 'random') -> tuple[np.ndarray, PairingStats]:
    """Pair every image of an epoch with an image that shares a class.

    Args:
        class_sets: For each image, its foreground class ids, most prominent first.
        rng: The epoch's random generator (the same seed gives the same pairs).
        rule: How an image's pairing key is chosen: ``'random'`` or ``'dominant'``.

    Returns:
        ``(P, 2)`` int64 array of image indices, ``P = ceil(N / 2)``, in random order; and
        the epoch's :class:`PairingStats`.
    """
    num_images = len(class_sets)
    stats = PairingStats(num_images=num_images, num_pairs=(num_images + 1) // 2)
    if num_images == 0:
        return np.zeros((0, 2), dtype=np.int64), stats
    keys = pairing_keys(class_sets, rng, rule)
    stats.background_only = int((keys < 0).sum())

    order = rng.permutation(num_images)
    order = order[np.argsort(keys[order], kind='stable')]  # grouped by key, shuffled inside
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, num_images])
    position = np.arange(num_images) - np.repeat(starts, sizes)
    group_size = np.repeat(sizes, sizes)
    first = (position % 2 == 0) & (position + 1 < group_size)
    fresh_pairs = np.stack([order[first], order[np.flatnonzero(first) + 1]], axis=1)
    leftovers = order[(position % 2 == 0) & (position + 1 == group_size)]
    stats.leftovers = len(leftovers)

    # (a, b, kind): kind 2 = two leftovers, 1 = repeated partner, 0 = self-pair.
    leftover_pairs = _pair_leftovers(leftovers, class_sets, keys, rng)
    two_fresh = [p[:2] for p in leftover_pairs if p[2] == 2]
    repeats = [p for p in leftover_pairs if p[2] != 2]  # random order: none is dropped every epoch
    pairs = np.concatenate([fresh_pairs, np.array(two_fresh, dtype=np.int64).reshape(-1, 2)])
    kept = repeats[:stats.num_pairs - len(pairs)]
    stats.dropped = len(repeats) - len(kept)
    stats.repeated = sum(1 for p in kept if p[2] == 1)
    stats.self_pairs = sum(1 for p in kept if p[2] == 0)
    pairs = np.concatenate([pairs, np.array([p[:2] for p in kept], dtype=np.int64).reshape(-1, 2)])
    pairs = pairs[rng.permutation(len(pairs))]
    return pairs.astype(np.int64), stats


def _pair_leftovers(leftovers: np.ndarray, class_sets: Sequence[np.ndarray], keys: np.ndarray,
                    rng: np.random.Generator) -> list:
    """Pair the odd images out: ``(a, b, kind)`` triples sorted by kind, descending; kind 2
    pairs two leftovers, 1 pairs a leftover with an image used elsewhere, 0 is a self-pair."""
    if len(leftovers) == 0:
        return []
    sets = {int(i): set(int(c) for c in class_sets[i]) for i in leftovers}
    unused = [int(i) for i in rng.permutation(leftovers)]
    taken: set = set()
    result = []
    for i in unused:
        if i in taken:
            continue
        taken.add(i)
        mate = next((j for j in unused if j not in taken and (sets[i] & sets[j]
                                                            or (keys[i] < 0 and keys[j] < 0))), None)
        if mate is not None:
            taken.add(mate)
            result.append((i, mate, 2))
            continue
        partner = _random_sharing_image(i, class_sets, keys, rng)
        result.append((i, partner, 1 if partner != i else 0))
    result.sort(key=lambda p: p[2] != 2)  # stable: repeats stay in random order
    return result


def _random_sharing_image(index: int, class_sets: Sequence[np.ndarray], keys: np.ndarray,
                          rng: np.random.Generator) -> int:
    """A random image other than ``index`` sharing its key, else any of its classes, else itself."""
    same_key = np.flatnonzero(keys == keys[index])
    same_key = same_key[same_key != index]
    if len(same_key):
        return int(same_key[rng.integers(len(same_key))])
    own = set(int(c) for c in class_sets[index])
    if own:
        sharing = [j for j, classes in enumerate(class_sets)
                   if j != index and own.intersection(int(c) for c in classes)]
        if sharing:
            return int(sharing[rng.integers(len(sharing))])
    return index
