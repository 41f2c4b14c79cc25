"""``IntraClassPairSampler``: an epoch of same-class pairs, split across ranks by whole pairs."""
from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from ..core.pairing import PAIR_KEYS, PairingStats, build_intra_class_pairs
from .class_index import dataset_class_index


@DATA_SAMPLERS.register_module()
class IntraClassPairSampler(Sampler):
    """Yield dataset indices pair by pair: ``a0, b0, a1, b1, ...``; ``a_i`` and ``b_i`` share a class.

    Drop-in for ``DefaultSampler`` / ``InfiniteSampler`` in ``train_dataloader.sampler``.
    Every epoch pairs the whole dataset anew from ``(seed, epoch)`` (see
    :func:`ipswap_mm.core.build_intra_class_pairs`): ``ceil(N / 2)`` pairs, the same on every
    rank, which are then dealt out whole, pair ``j`` to rank ``j % world_size`` (padded by
    repeating the first pairs so that all ranks get as many). With an even
    ``train_dataloader.batch_size`` every batch therefore holds whole pairs.

    Args:
        dataset: The training dataset.
        shuffle: Draw new pairs every epoch. False keeps the epoch-0 pairs for good, but
            for the last few places of an epoch, filled by pairs that repeat an image or
            self-pairs when the dataset holds more of them than places: which of those are
            kept changes every epoch, so that no image sits out every epoch.
        seed: Pairing seed; ``None`` uses a seed synchronised across ranks, and the runner
            passes ``randomness.seed`` here.
        pair_key: ``'random'`` (an image joins the group of a random one of its classes
            each epoch) or ``'dominant'`` (the class it holds most of).
        class_source: ``'auto'``, ``'seg_map'`` (scan label maps) or ``'instances'``
            (detection annotations).
        ignore_index: Label-map value that is not a class (label maps only; every detection class id is a class).
        background_classes: Classes that do not make two images a pair: ``'auto'`` (the
            classes named 'background', 'bg', '_background_' or '__background__'), ``None``,
            or class ids or class names, one or a list.
        cache_dir: Where the label-map scan is cached; ``None``: ``<work_dir>/ipswap_cache``.
        scan_workers: Threads reading label maps during the one-off scan.
        infinite: Go on to the next epoch's pairs when an epoch's run out, in one iterator, as
            ``InfiniteSampler`` does. ``None`` (default): ``IPSDistillHook`` sets it for the
            train loop, ``True`` under an iteration-based loop (whose dataloader, when a
            finite sampler runs out, MMEngine restarts after a 2-second pause: a stall every
            epoch that the stock ``InfiniteSampler`` never has), ``False`` under an
            epoch-based one, whose epochs must end. Either way the epochs and their pairs
            are the same, ``(seed, 0)``, ``(seed, 1)``, ...; ``__len__`` is one epoch's.
    """

    def __init__(self,
                 dataset,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 pair_key: str = 'random',
                 class_source: str = 'auto',
                 ignore_index: int = 255,
                 background_classes: Union[str, int, Sequence[Union[int, str]], None] = 'auto',
                 cache_dir: Optional[str] = None,
                 scan_workers: int = 8,
                 infinite: Optional[bool] = None) -> None:
        if pair_key not in PAIR_KEYS:
            raise ValueError(f'train_dataloader.sampler.pair_key must be one of {PAIR_KEYS}, got {pair_key!r}')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.pair_key = pair_key
        self.ignore_index = ignore_index
        self.class_index = dataset_class_index(dataset, class_source, ignore_index, background_classes,
                                               cache_dir, scan_workers)
        self.num_pairs = (len(self.class_index.class_sets) + 1) // 2
        self.pairs_per_rank = math.ceil(self.num_pairs / self.world_size)
        self.infinite = infinite
        self.epoch = 0  # where the next iterator starts (set_epoch)
        self._resume_at: Optional[tuple] = None  # (epoch, pair) the next iterator starts at instead, once
        self.epoch_drawn = 0  # the epoch the newest iterator last drew indices from (for inspection; tests read it)
        self._reported_epochs: set = set()

    def epoch_pairs(self, epoch: int) -> np.ndarray:
        """All ranks' pairs for ``epoch``: ``(ceil(N / 2), 2)`` dataset indices."""
        return self._pairs_and_stats(epoch)[0]

    def _pairs_and_stats(self, epoch: int) -> tuple[np.ndarray, PairingStats]:
        rng = np.random.default_rng([self.seed, epoch if self.shuffle else 0])
        # kept pairs: the few places an epoch's surplus competes for still rotate (see ``shuffle``)
        fill_rng = None if self.shuffle else np.random.default_rng([self.seed, epoch, 1])
        return build_intra_class_pairs(self.class_index.class_sets, rng, self.pair_key, self.class_index.image_ids,
                                       fill_rng)

    def rank_pairs(self, epoch: int, start: int = 0) -> np.ndarray:
        """This rank's share of ``epoch``'s pairs from pair ``start`` on: ``(pairs_per_rank, 2)``
        for a whole epoch, ``(ceil((ceil(N / 2) - start) / world_size), 2)`` for its rest."""
        pairs, stats = self._pairs_and_stats(epoch)
        if epoch not in self._reported_epochs and self.rank == 0:
            self._reported_epochs.add(epoch)
            if stats.repeated or stats.self_pairs or stats.dropped or stats.background_only:
                print_log(f'IntraClassPairSampler epoch {epoch}: {stats.num_pairs} pairs of {stats.num_images} '
                          f'images; {stats.background_only} background-only images; {stats.repeated} '
                          f'pairs repeat an image, {stats.self_pairs} images have no same-class partner '
                          f'(self-pairs), {stats.dropped} leftover images sit this epoch out.',
                          logger='current')
        pairs = pairs[start:]
        total = math.ceil(len(pairs) / self.world_size) * self.world_size
        if total > len(pairs):
            pairs = np.concatenate([pairs, np.resize(pairs, (total - len(pairs), 2))])
        return pairs[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of epoch ``self.epoch``, then, if ``infinite`` (read when an epoch
        runs out, so that the hook can still set it after the iterator started), of the next
        epochs. The iterator counts its epochs itself: a dataloader's workers draw indices
        ahead of training, into the next epoch when epochs are short, and MMEngine calls
        ``set_epoch`` before the first epoch after the iterator was made (a resumed
        iteration-based loop, every run's ``before_train_epoch``), which must not send a
        running iterator back to an epoch it has drawn. After :meth:`resume_at`, it starts at
        that place instead, once."""
        (epoch, start), self._resume_at = self._resume_at or (self.epoch, 0), None
        while True:
            self.epoch_drawn = epoch
            yield from self.rank_pairs(epoch, start).reshape(-1).tolist()
            if not self.infinite:
                return
            epoch, start = epoch + 1, 0

    def __len__(self) -> int:
        return 2 * self.pairs_per_rank

    def set_epoch(self, epoch: int) -> None:
        """Called by MMEngine before every epoch."""
        self.epoch = epoch

    def resume_at(self, epoch: int, pair: int) -> None:
        """Start the next iterator at pair ``pair`` of epoch ``epoch`` (the pairs before it
        trained already), dealing that epoch's rest out whole as an epoch's pairs are."""
        self._resume_at = (epoch, pair)

    def stream_position(self, start: tuple, iterations: int, world_size: int, pairs_per_iter: int) -> tuple:
        """``(epoch, pair)`` that the pairs of a run of ``world_size`` ranks, each training
        ``pairs_per_iter`` pairs an iteration, reach after ``iterations`` iterations from
        ``start`` ``(epoch, pair)``: where a resumed run goes on. Pairs are dealt out as in
        :meth:`rank_pairs`, so after ``k`` pairs a rank into an epoch's rest from ``pair``, its
        ranks together have trained pairs ``pair`` to ``pair + k * world_size`` (the padding
        past the epoch's end repeats pairs already trained)."""
        epoch, pair = start
        taken = iterations * pairs_per_iter  # by every rank
        rest = math.ceil((self.num_pairs - pair) / world_size)
        if taken >= rest:
            taken -= rest
            whole = math.ceil(self.num_pairs / world_size)
            epoch, pair = epoch + 1 + taken // whole, 0
            taken %= whole
        # fewer pairs a rank than the epoch's rest holds: short of its end, so in this epoch
        return epoch, pair + taken * world_size
