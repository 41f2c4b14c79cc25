"""Where a resumed run's pairs go on: the seed the runner restores, and the pair reached when
the run resumes on another number of processes or batch size. ``IPSDistillHook`` applies
these when training starts and records the run's pair stream in every checkpoint."""
from __future__ import annotations

from typing import Optional

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from ..datasets.pair_sampler import IntraClassPairSampler
from .setup_checks import pair_sampler_of


def follow_resumed_seed(train_loop, seed_at_build: Optional[int], seed: int) -> bool:
    """Pair with the resumed run's seed when the sampler took the runner's; returns whether
    the sampler's seed changed.

    Without ``randomness.seed`` the runner draws a seed, builds the sampler with it, and a
    resume then restores the checkpoint's seed (the swaps follow it by themselves); here the
    pairs follow it too, so that a resumed run pairs as the run it continues. An
    iteration-based loop's dataloader iterator exists already (its workers may have drawn
    indices): the caller builds it again (:func:`rebuild_data_iterator`), once, after
    :func:`follow_resumed_layout`, which may build it too. A seed given to the sampler itself
    is left alone.
    """
    sampler = pair_sampler_of(train_loop.dataloader)
    if seed_at_build is None or seed == seed_at_build or sampler.seed != seed_at_build:
        return False
    sampler.seed = seed
    return True


def rebuild_data_iterator(train_loop) -> None:
    """Build an iteration-based loop's dataloader iterator again, so that it draws from the
    sampler as it is now (its workers may have drawn indices already); nothing for a loop
    without one."""
    iterator = getattr(train_loop, 'dataloader_iterator', None)
    if iterator is not None:
        train_loop.dataloader_iterator = type(iterator)(train_loop.dataloader)


def pair_stream_meta(train_loop, start: tuple) -> Optional[dict]:
    """What a checkpoint records of an iteration-based run's pairs, for
    :func:`follow_resumed_layout`: where they started (``start``: epoch, pair, iteration;
    ``(0, 0, 0)`` unless the run was resumed on another layout) and the layout (world size,
    pairs a rank trains an iteration). ``None`` for an epoch-based run (it resumes at an
    epoch's start, whatever the layout)."""
    if not isinstance(train_loop, IterBasedTrainLoop):
        return None
    sampler = pair_sampler_of(train_loop.dataloader)
    if not isinstance(sampler, IntraClassPairSampler) or not sampler.infinite:
        return None
    epoch, pair, iteration = start
    return dict(epoch=epoch, pair=pair, iter=iteration, world_size=sampler.world_size,
                pairs_per_iter=train_loop.dataloader.batch_sampler.batch_size // 2)


class SkippedBatches:
    """A resumed iteration-based loop's data iterator when the pair sampler starts where the
    run stopped: MMEngine's loop first calls ``next`` once for every iteration trained, to
    skip those batches; here those calls load nothing."""

    def __init__(self, iterator, skip: int) -> None:
        self.iterator, self.skip = iterator, skip

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip:
            self.skip -= 1
            return None
        return next(self.iterator)


def follow_resumed_layout(train_loop, saved: Optional[dict]) -> tuple:
    """Go on with the pairs where a resumed iteration-based run stopped, also on another
    number of processes or another batch size.

    MMEngine resumes such a run by skipping as many batches as iterations were trained, of
    the new layout: with other world size or batch size that skips pairs never trained, or
    trains pairs again. When the checkpoint's layout (``saved``, :func:`pair_stream_meta`)
    differs from this run's, or its pairs did not start at the beginning, the pair sampler
    starts at the pair the run reached (:meth:`IntraClassPairSampler.stream_position`) and
    MMEngine's skip loads nothing. With the same layout nothing changes: the skip replays
    the data pipeline's random draws exactly. Returns where this run's pairs start (epoch,
    pair, iteration), for :func:`pair_stream_meta`: ``(0, 0, 0)`` where MMEngine's skip
    stands (and the data iterator was not built again).
    """
    if not saved or not isinstance(train_loop, IterBasedTrainLoop) or train_loop.iter == 0:
        return 0, 0, 0
    sampler = pair_sampler_of(train_loop.dataloader)
    layout = (sampler.world_size, train_loop.dataloader.batch_sampler.batch_size // 2)
    saved_layout = (saved['world_size'], saved['pairs_per_iter'])
    saved_start = (saved['epoch'], saved['pair'], saved['iter'])
    if (saved_layout == layout and saved_start == (0, 0, 0)) or not sampler.infinite:
        return 0, 0, 0
    epoch, pair = sampler.stream_position(saved_start[:2], train_loop.iter - saved_start[2], *saved_layout)
    sampler.resume_at(epoch, pair)
    rebuild_data_iterator(train_loop)
    train_loop.dataloader_iterator = SkippedBatches(train_loop.dataloader_iterator, train_loop.iter)
    print_log(f'IPSDistillHook: the checkpoint trained on {saved_layout[0]} processes x {2 * saved_layout[1]} '
              f'images, this run on {layout[0]} x {2 * layout[1]}: its pairs go on at pair {pair} of epoch {epoch}, '
              'where the checkpoint stopped (the batches MMEngine skips are not loaded)', logger='current')
    return epoch, pair, train_loop.iter


def follow_resume(train_loop, seed_at_build: Optional[int], seed: int, saved: Optional[dict]) -> tuple:
    """Both of the above, with the data iterator built again at most once (its workers start
    anew each time): :func:`follow_resumed_seed`, then :func:`follow_resumed_layout`, whose
    start ``(epoch, pair, iteration)`` it returns."""
    reseeded = follow_resumed_seed(train_loop, seed_at_build, seed)
    start = follow_resumed_layout(train_loop, saved)
    if reseeded and start == (0, 0, 0):  # else the layout built it again already
        rebuild_data_iterator(train_loop)
    return start
