"""Intra-class pairing of a dataset for one epoch.

Pure NumPy. Input: the foreground classes of every image (and how much of each it
holds). Output: ``ceil(N / 2)`` pairs of image indices whose two images share a class.

The rule, step by step:

1. Every image gets a *pairing key*: one of its classes (``'random'``: drawn for this
   epoch, weighted equally; ``'dominant'``: the class it holds most of). Images with no
   foreground class share the key ``-1`` (background only).
2. Images are shuffled, grouped by key and paired two by two inside each group.
3. A dataset that repeats an image under several indices (``RepeatDataset``,
   ``ClassBalancedDataset``, a ``ConcatDataset`` of lists that name one image twice) could
   pair an image with a copy of itself. Such *twin* pairs trade partners with random other
   pairs of their key (vectorised rounds, then the few left one by one). A twin no pair of
   its key can take (its image holds more than half of the key: ``ClassBalancedDataset``
   repeating the one image of a rare class) splits a pair keyed on another class both its
   copies hold: ``(a, a')`` and ``(c, d)`` become ``(a, c)`` and ``(a', d)``, no pair more, so
   no requested copy is dropped in step 5; only a twin that finds none becomes leftovers
   (step 4), which look for a partner among all their classes. Without repeated images
   nothing is drawn for this step, so the pairs are those of plain datasets.
4. The odd image out of a group (a *leftover*) is paired with another leftover it shares
   a class with, if any; otherwise with a random other image that shares one of its
   classes (that image then appears twice this epoch); otherwise, when no other image
   holds any of its classes (a class with a single image), with itself. A self-pair has
   no swap to make and contributes no distillation signal; it is counted.
5. Exactly ``ceil(N / 2)`` pairs are kept per epoch so that an epoch always has the same
   length: pairs of two fresh images are always kept; pairs with a repeated partner or a
   self-pair fill the rest, those whose leftover came from the smallest key group first
   (then a repeated partner before a self-pair; ties in random order), and the surplus
   (fewer than the number of keys, unless copies of one image outnumber the other images
   of their class) is dropped for this epoch only, and counted: the odd images out of the
   largest groups, another image every epoch, rather than the images of rare classes,
   which are leftovers far more often. With ``fill_rng`` (pairs kept from epoch to epoch, so the leftovers are the same
   images every epoch) they fill it in random order instead: all take turns.
"""
from __future__ import annotations

import functools
import itertools
from collections import abc
from dataclasses import dataclass
from typing import Optional, Sequence, Union

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


class ClassSets(abc.Sequence):
    """The classes of every image, most prominent first, in two arrays: ``flat``, every
    image's class ids one image after the other, and ``offsets`` ``(N + 1,)``: image ``i``'s
    are ``flat[offsets[i]:offsets[i + 1]]``, which ``sets[i]`` gives (a view). A list of one
    array per image takes about 185 bytes an image more (Objects365's 1.7 million images:
    310 MB in every process); here the per-epoch work is vectorised over ``flat``.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat = np.asarray(flat, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if self.offsets.ndim != 1 or not len(self.offsets) or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.flat) or (np.diff(self.offsets) < 0).any():
            raise ValueError(f'offsets must rise from 0 to len(flat) ({len(self.flat)}), got {self.offsets!r}')

    @classmethod
    def of(cls, class_sets: Sequence[Sequence[int]]) -> ClassSets:
        """``class_sets`` itself if it is one, else its sets (arrays or lists) gathered."""
        if isinstance(class_sets, ClassSets):
            return class_sets
        lengths = np.fromiter((len(c) for c in class_sets), dtype=np.int64, count=len(class_sets))
        flat = np.fromiter(itertools.chain.from_iterable(class_sets), dtype=np.int64, count=int(lengths.sum()))
        return cls(flat, np.r_[0, np.cumsum(lengths)])

    def take(self, indices: np.ndarray) -> ClassSets:
        """The sets of ``indices``, in their order (repeats allowed; negative ones count from the end)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f'images {indices.min()} to {indices.max()} of {len(self)}')
        indices = np.where(indices < 0, indices + len(self), indices)
        lengths = self.lengths[indices]
        offsets = np.r_[0, np.cumsum(lengths)]
        starts = np.repeat(self.offsets[indices] - offsets[:-1], lengths)
        return ClassSets(self.flat[starts + np.arange(offsets[-1])], offsets)

    def select(self, keep: np.ndarray) -> ClassSets:
        """Every image's classes where ``keep`` (bool, shaped as ``flat``) is True, in their order."""
        lengths = np.bincount(self.owners[keep], minlength=len(self))
        return ClassSets(self.flat[keep], np.r_[0, np.cumsum(lengths)])

    @property
    def lengths(self) -> np.ndarray:
        """``(N,)`` how many classes each image holds."""
        return np.diff(self.offsets)

    @property
    def owners(self) -> np.ndarray:
        """Shaped as ``flat``: the image each class id belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: Union[int, slice]) -> Union[np.ndarray, ClassSets]:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        if not -len(self) <= index < len(self):
            raise IndexError(f'image {index} of {len(self)}')
        index %= len(self)
        return self.flat[self.offsets[index]:self.offsets[index + 1]]


def pairing_keys(class_sets: Sequence[np.ndarray], rng: np.random.Generator, rule: str) -> np.ndarray:
    """One key per image: a class from its set (see module doc), or -1 if the set is empty.

    ``class_sets[i]`` lists image i's classes, most prominent first (a :class:`ClassSets`,
    or a sequence of arrays).
    """
    if rule not in PAIR_KEYS:
        raise ValueError(f'pair_key must be one of {PAIR_KEYS}, got {rule!r}')
    class_sets = ClassSets.of(class_sets)
    lengths = class_sets.lengths
    keys = np.full(len(class_sets), -1, dtype=np.int64)
    draws = rng.random(len(class_sets))
    held = lengths > 0
    # the (draw * length)-th class, rounded down; the first for 'dominant'
    choice = np.zeros(len(class_sets), dtype=np.int64) if rule == 'dominant' else (draws * lengths).astype(np.int64)
    keys[held] = class_sets.flat[class_sets.offsets[:-1][held] + choice[held]]
    return keys


def build_intra_class_pairs(class_sets: Sequence[np.ndarray],
                            rng: np.random.Generator,
                            rule: str = 'random',
                            image_ids: Optional[np.ndarray] = None,
                            fill_rng: Optional[np.random.Generator] = None) -> tuple[np.ndarray, PairingStats]:
    """Pair every image of an epoch with an image that shares a class.

    Args:
        class_sets: For each image (dataset index), its foreground class ids, most prominent
            first: a :class:`ClassSets`, or a sequence of arrays (gathered into one first).
        rng: The epoch's random generator (the same seed gives the same pairs).
        rule: How an image's pairing key is chosen: ``'random'`` or ``'dominant'``.
        image_ids: ``(N,)`` ints, equal for indices that read the same image (a repeated
            dataset); such indices are never paired with each other while another image
            shares their key. ``None``: every index is its own image.
        fill_rng: Chooses at random which pairs with a repeated partner or self-pairs
            fill the epoch's last places when there are more than places (step 5); ``None``:
            the leftovers of the smallest key groups (ties in ``rng``'s order). Drawn from
            only then. A sampler that keeps its pairs every epoch (``rng`` seeded
            the same) passes an epoch-seeded one, so that the images which sit an epoch out
            differ from epoch to epoch.

    Returns:
        ``(P, 2)`` int64 array of image indices, ``P = ceil(N / 2)``, in random order; and
        the epoch's :class:`PairingStats`.
    """
    class_sets = ClassSets.of(class_sets)
    if len(class_sets.flat) and class_sets.flat.min() < 0:
        raise ValueError(f'class ids must be >= 0 (an empty set marks a background-only image), got '
                         f'{class_sets.flat.min()}')
    num_images = len(class_sets)
    if image_ids is None:
        image_ids = np.arange(num_images)
    image_ids = np.asarray(image_ids)
    if image_ids.shape != (num_images,):
        raise ValueError(f'image_ids must hold one id per image: shape {(num_images,)}, got {image_ids.shape}')
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
    pair_keys = keys[fresh_pairs[:, 0]]
    fresh_pairs, stuck = _split_twins(fresh_pairs, pair_keys, image_ids, rng)
    fresh_pairs, stuck = _split_stuck_twins(fresh_pairs, stuck, pair_keys, class_sets, image_ids, rng)
    # twins no pair of any of their classes could take: leftovers, which try all their classes
    leftovers = np.concatenate([order[(position % 2 == 0) & (position + 1 == group_size)], fresh_pairs[stuck].ravel()])
    fresh_pairs = fresh_pairs[~stuck]
    stats.leftovers = len(leftovers)

    # (a, b, kind): kind 2 = two leftovers, 1 = repeated partner, 0 = self-pair.
    leftover_pairs = _pair_leftovers(leftovers, class_sets, keys, image_ids, rng)
    two_fresh = [p[:2] for p in leftover_pairs if p[2] == 2]
    repeats = [p for p in leftover_pairs if p[2] != 2]  # in random order
    pairs = np.concatenate([fresh_pairs, np.array(two_fresh, dtype=np.int64).reshape(-1, 2)])
    room = stats.num_pairs - len(pairs)
    if len(repeats) > room and fill_rng is not None:  # kept pairs: the same leftovers every epoch take turns
        repeats = [repeats[i] for i in fill_rng.permutation(len(repeats))]
    elif len(repeats) > room:
        # pairs drawn afresh: the leftovers of the smallest key groups first, a repeated
        # partner before a self-pair (which has no swap), ties in random order; the surplus
        # falls on the odd images out of large groups, another image each epoch (dropped at
        # random, it fell mostly on rare classes, which leave a leftover far more often: in an
        # LVIS-like tail, 79x the misses of the other images)
        rarity = sizes[np.searchsorted(sorted_keys[starts], keys[[p[0] for p in repeats]])]
        is_self_pair = np.array([p[2] == 0 for p in repeats])
        repeats = [repeats[i] for i in np.lexsort((is_self_pair, rarity))]
    kept = repeats[:room]
    stats.dropped = len(repeats) - len(kept)
    stats.repeated = sum(1 for p in kept if p[2] == 1)
    stats.self_pairs = sum(1 for p in kept if p[2] == 0)
    pairs = np.concatenate([pairs, np.array([p[:2] for p in kept], dtype=np.int64).reshape(-1, 2)])
    pairs = pairs[rng.permutation(len(pairs))]
    return pairs.astype(np.int64), stats


def _split_twins(pairs: np.ndarray, pair_keys: np.ndarray, image_ids: np.ndarray, rng: np.random.Generator,
                 rounds: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Give every pair of two indices of one image (a *twin*) other partners.

    A twin ``(a, a')`` and a random pair ``(c, d)`` of the same key in which neither index
    is ``a``'s image become ``(a, d)`` and ``(c, a')``. First ``rounds`` vectorised rounds in
    which all twins draw a pair of their key at once (a pair takes part in one exchange a
    round; with 20 images of one class repeated, as in MMSegmentation's DRIVE config, a
    round settles five twins in six), then the few left one by one, each drawing among the
    pairs it can exchange with.

    Args:
        pairs: ``(P, 2)`` indices; both of a pair have the key ``pair_keys[p]``.
        pair_keys: ``(P,)`` the key of every pair.
        image_ids: ``(N,)`` the image every index reads.

    Returns:
        The pairs (a new array if any changed; ``rng`` is not drawn from when there is no
        twin) and ``(P,)`` bool, the twins left: those of an image that every other pair of
        their key holds too (one image holds more than half of the key).
    """
    is_twin = image_ids[pairs[:, 0]] == image_ids[pairs[:, 1]]
    if not is_twin.any():
        return pairs, is_twin
    pairs = pairs.copy()
    by_key = np.argsort(pair_keys, kind='stable')
    sorted_keys = pair_keys[by_key]

    def key_range(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the pairs of each key start and stop in ``by_key``."""
        return np.searchsorted(sorted_keys, keys, side='left'), np.searchsorted(sorted_keys, keys, side='right')

    def exchange(twins: np.ndarray, candidates: np.ndarray) -> None:
        pairs[twins, 1], pairs[candidates, 1] = pairs[candidates, 1], pairs[twins, 1]
        is_twin[twins] = False
        is_twin[candidates] = False  # (c, a') holds two images, whether or not (c, d) did

    for _ in range(rounds):
        twins = np.flatnonzero(is_twin)
        if not len(twins):
            break
        start, stop = key_range(pair_keys[twins])
        candidates = by_key[start + (rng.random(len(twins)) * (stop - start)).astype(np.int64)]
        image = image_ids[pairs[twins, 0]]
        ok = (image_ids[pairs[candidates, 0]] != image) & (image_ids[pairs[candidates, 1]] != image)
        twins, candidates = twins[ok], candidates[ok]
        _, first_use = np.unique(candidates, return_index=True)
        twins, candidates = twins[first_use], candidates[first_use]
        free = ~np.isin(candidates, twins)  # a twin chosen as a candidate exchanges as a twin
        exchange(twins[free], candidates[free])
    stuck: set = set()  # images no pair of their key can take
    for twin in np.flatnonzero(is_twin):
        image = int(image_ids[pairs[twin, 0]])
        if not is_twin[twin] or (image, pair_keys[twin]) in stuck:
            continue
        start, stop = key_range(pair_keys[twin])
        members = by_key[start:stop]
        members = members[(image_ids[pairs[members, 0]] != image) & (image_ids[pairs[members, 1]] != image)]
        if not len(members):
            stuck.add((image, pair_keys[twin]))
            continue
        exchange(np.array([twin]), members[rng.integers(len(members))][None])
    return pairs, is_twin


def _split_stuck_twins(pairs: np.ndarray, stuck: np.ndarray, pair_keys: np.ndarray,
                       class_sets: ClassSets, image_ids: np.ndarray,
                       rng: np.random.Generator, draws: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Give each twin ``(a, a')`` left by :func:`_split_twins` a pair ``(c, d)`` keyed on a
    class both ``a`` and ``a'`` hold (two entries of one image may hold different classes:
    VOC's two label folders), neither of them that image: they become ``(a, c)`` and
    ``(a', d)``, each sharing the key. A pair is split once; twins in random order.

    Each twin first draws ``draws`` random pairs of its classes (a common class holds most
    of the dataset: gathering all its pairs for every twin would cost a pass over them);
    only if none will do, it looks through all of them.

    Returns:
        The pairs and the twins still left, ``(P,)`` bool (``rng`` is not drawn from when
        there is none).
    """
    if not stuck.any():
        return pairs, stuck
    pairs, stuck = pairs.copy(), stuck.copy()
    taken = stuck.copy()  # twins, and pairs split already, are no partners
    by_key = np.argsort(pair_keys, kind='stable')
    sorted_keys = pair_keys[by_key]

    def usable(members: np.ndarray, image: int) -> np.ndarray:
        return members[~taken[members] & (image_ids[pairs[members, 0]] != image)
                       & (image_ids[pairs[members, 1]] != image)]

    hopeless: set = set()  # (image, classes) no pair can take: pairs only get taken, so none will
    for twin in rng.permutation(np.flatnonzero(stuck)):
        image = image_ids[pairs[twin, 0]]
        classes = np.intersect1d(class_sets[pairs[twin, 0]], class_sets[pairs[twin, 1]])
        start, stop = np.searchsorted(sorted_keys, classes, 'left'), np.searchsorted(sorted_keys, classes, 'right')
        sizes = stop - start
        if not sizes.sum():
            continue
        # ``draws`` pairs at random among those of the twin's classes
        slots = rng.integers(sizes.sum(), size=draws)
        key_of_slot = np.searchsorted(np.cumsum(sizes), slots, side='right')
        drawn = by_key[start[key_of_slot] + slots - np.r_[0, np.cumsum(sizes)][key_of_slot]]
        if (image, classes.tobytes()) in hopeless:
            continue
        members = usable(drawn, image)
        if not len(members):
            members = usable(np.concatenate([by_key[a:b] for a, b in zip(start, stop)]), image)
            if not len(members):
                hopeless.add((image, classes.tobytes()))
                continue
        partner = members[rng.integers(len(members))] if len(members) > 1 else members[0]
        pairs[twin, 1], pairs[partner, 0] = pairs[partner, 0], pairs[twin, 1]
        taken[partner], stuck[twin] = True, False
    return pairs, stuck


def _pair_leftovers(leftovers: np.ndarray, class_sets: ClassSets, keys: np.ndarray,
                    image_ids: np.ndarray, rng: np.random.Generator) -> list:
    """Pair the odd images out: ``(a, b, kind)`` triples sorted by kind, descending; kind 2
    pairs two leftovers, 1 pairs a leftover with an image used elsewhere, 0 is a self-pair.

    Leftovers are taken in random order; each pairs with the first leftover after it, in
    that order, that is not taken, reads another image and shares a class with it (or,
    background-only, is background-only too). That first one is found through a queue of
    the leftovers of every class, not a scan of all leftovers for each (a scan was quadratic:
    12-16 s an epoch for 8000 copies of one image whose class no other image holds, a
    ``RepeatDataset`` of a small dataset, against 0.27-0.46 s; ``docs/runs/pairing_scale.py``).
    """
    if len(leftovers) == 0:
        return []
    order = rng.permutation(leftovers)
    images = image_ids[order]
    # every class's leftovers, as positions in ``order``; background-only ones under one key
    queues: dict = {}
    class_lists = []
    for position, index in enumerate(order.tolist()):
        classes = {int(c) for c in class_sets[index]} if len(class_sets[index]) else {_BACKGROUND}
        class_lists.append(classes)
        for cls in classes:
            queues.setdefault(cls, []).append(position)
    queues = {cls: _LeftoverQueue(np.asarray(positions), images) for cls, positions in queues.items()}
    taken = np.zeros(len(order), dtype=bool)
    holders = _ClassHolders(class_sets)
    sharing_image = _SharingImage(class_sets, keys, image_ids, holders, rng)
    result = []
    for position, index in enumerate(order.tolist()):
        if taken[position]:
            continue
        taken[position] = True
        found = [queues[cls].first(taken, images[position]) for cls in class_lists[position]]
        found = [mate for mate in found if mate is not None]
        if found:
            mate = min(found)
            taken[mate] = True
            result.append((index, int(order[mate]), 2))
            continue
        partner = sharing_image(index)
        result.append((index, partner, 1 if partner != index else 0))
    result.sort(key=lambda p: p[2] != 2)  # stable: repeats stay in random order
    return result


_BACKGROUND = 'background-only'  # the queue key of leftovers without a class (no class id is a string)


class _LeftoverQueue:
    """The leftovers of one class, as ascending positions in the leftovers' random order.

    :meth:`first` finds the first entry not taken that reads another image than the one
    asked about. Entries taken are jumped over (jumps shortened as they are followed, as in
    a union-find), runs of one image in a step, and where the last search for an image
    stopped is remembered: every entry not taken before that point reads that image, so
    the next search for it starts there. Thousands of copies of one image among a class's
    leftovers are then passed over once, not once per copy.
    """

    def __init__(self, positions: np.ndarray, images: np.ndarray) -> None:
        self.positions = positions.tolist()
        runs = images[positions]
        # next_other[k]: the first entry after k that reads another image than entry k
        run_ends = np.r_[np.flatnonzero(runs[1:] != runs[:-1]) + 1, len(positions)]
        self.next_other = np.repeat(run_ends, np.diff(np.r_[0, run_ends])).tolist()
        self.images = runs.tolist()
        self.jump = list(range(1, len(positions) + 1))  # from a taken entry: where to look next
        self.head = 0  # every entry before it is taken
        self.last_image, self.last_stop = None, 0  # entries not taken before last_stop read last_image

    def _not_taken(self, k: int, taken: np.ndarray) -> int:
        """The first entry from ``k`` on that is not taken (``len`` if none)."""
        path = []
        while k < len(self.positions) and taken[self.positions[k]]:
            path.append(k)
            k = self.jump[k]
        for step in path:
            self.jump[step] = k
        return k

    def first(self, taken: np.ndarray, image) -> Optional[int]:
        """The first entry not taken that reads another image than ``image``, or None."""
        k = self.head = self._not_taken(self.head, taken)
        if image == self.last_image:
            k = self._not_taken(max(k, self.last_stop), taken)
        while k < len(self.positions) and self.images[k] == image:
            k = self._not_taken(self.next_other[k], taken)
        if k > self.head:  # passed over entries of ``image`` to get here
            self.last_image, self.last_stop = image, k
        return self.positions[k] if k < len(self.positions) else None


class _SharingImage:
    """A random other image than an index's, sharing its key, else any of its classes,
    else the index itself (:meth:`__call__`).

    The images of a key come from one sort of the keys (a comparison of every key for each
    leftover was quadratic). What an index can pair with depends only on its image, key and
    classes: an empty answer is remembered for good (the other copies of a lone image have
    none either), the last few others too (thousands of copies of one image sharing a class
    with many others each gathered them again: 5 s an epoch for 4000 copies).
    """

    RECENT = 16  # how many candidate lists are kept

    def __init__(self, class_sets: ClassSets, keys: np.ndarray, image_ids: np.ndarray,
                 holders: _ClassHolders, rng: np.random.Generator) -> None:
        self.class_sets, self.keys, self.image_ids, self.holders, self.rng = class_sets, keys, image_ids, holders, rng
        self.alone: set = set()  # (image, key, classes) that no other image shares a class with
        self.recent: dict = {}  # (image, key, classes): the candidates, oldest first

    @functools.cached_property
    def _by_key(self) -> tuple[np.ndarray, np.ndarray]:
        """The indices sorted by key (those of one key in increasing order), and their keys:
        sorted on first use, in an epoch in which some leftover found no other to pair with."""
        by_key = np.argsort(self.keys, kind='stable')
        return by_key, self.keys[by_key]

    def __call__(self, index: int) -> int:
        query = (self.image_ids[index].item(), self.keys[index].item(), tuple(self.class_sets[index].tolist()))
        if query in self.alone:
            return index
        candidates = self.recent.pop(query, None)
        if candidates is None:
            candidates = self._candidates(index)
            if not len(candidates):
                self.alone.add(query)
                return index
            if len(self.recent) >= self.RECENT:
                del self.recent[next(iter(self.recent))]
        self.recent[query] = candidates
        return int(candidates[self.rng.integers(len(candidates))])

    def _candidates(self, index: int) -> np.ndarray:
        """The other images' indices sharing ``index``'s key, else any of its classes, ascending."""
        image, key = self.image_ids[index], self.keys[index]
        by_key, sorted_keys = self._by_key
        same_key = by_key[np.searchsorted(sorted_keys, key, 'left'):np.searchsorted(sorted_keys, key, 'right')]
        same_key = same_key[self.image_ids[same_key] != image]
        if len(same_key):
            return same_key
        sharing = self.holders.of(self.class_sets[index])
        return sharing[self.image_ids[sharing] != image]


class _ClassHolders:
    """Which images hold a class: an inverted index of ``class_sets``, built on first use."""

    def __init__(self, class_sets: ClassSets) -> None:
        self._class_sets = class_sets

    @functools.cached_property
    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (class, image) entry, sorted by class: ``(classes, images)``."""
        sets = self._class_sets
        order = np.argsort(sets.flat, kind='stable')
        return sets.flat[order], sets.owners[order]

    def of(self, classes: np.ndarray) -> np.ndarray:
        """The images holding any of ``classes``, each once, in increasing order."""
        sorted_classes, images = self._index
        start = np.searchsorted(sorted_classes, classes, side='left')
        stop = np.searchsorted(sorted_classes, classes, side='right')
        return np.unique(np.concatenate([images[a:b] for a, b in zip(start, stop)] + [np.zeros(0, np.int64)]))
