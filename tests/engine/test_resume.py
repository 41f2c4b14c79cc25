"""Where a resumed run's pairs go on (``ipswap_mm/engine/resume.py``)."""
import pytest
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop, loops
from torch.utils.data import DataLoader

from ipswap_mm.datasets import class_index, pair_sampler
from ipswap_mm.datasets.pair_sampler import IntraClassPairSampler
from ipswap_mm.engine.resume import follow_resume, follow_resumed_layout, pair_stream_meta
from tests.engine.test_distill_hook import Indices, pair_loader
from tests.engine.test_setup_checks import loop_of


def test_a_resume_that_restores_the_runner_seed_restores_the_pairs(monkeypatch):
    """randomness.seed unset: the runner built the sampler with the seed it drew (11), then the
    resume restored the checkpoint's (0). The loop's iterator, whose worker had already
    drawn indices with seed 11, is built again and yields the pairs of seed 0."""
    def one_epoch(seed, **loader_args):
        return [batch.tolist() for batch in DataLoader(Indices(), batch_size=2, **loader_args,
                                                       sampler=IntraClassPairSampler(Indices(), seed=seed))]

    loader = pair_loader(batch_size=2, monkeypatch=monkeypatch)
    assert one_epoch(0) != one_epoch(11)
    loader = DataLoader(Indices(), batch_size=2, sampler=IntraClassPairSampler(Indices(), seed=11), num_workers=1)
    loop = loop_of(IterBasedTrainLoop, loader)
    loop.dataloader_iterator = loops._InfiniteDataloaderIterator(loader)  # its worker prefetches
    assert follow_resume(loop, seed_at_build=11, seed=0, saved=None) == (0, 0, 0)
    assert loader.sampler.seed == 0
    assert [next(loop.dataloader_iterator).tolist() for _ in range(4)] == one_epoch(0)


class CountedIterator(loops._InfiniteDataloaderIterator):
    built = 0

    def __init__(self, dataloader):
        super().__init__(dataloader)
        type(self).built += 1


@pytest.mark.parametrize('layout_changes', [False, True])
def test_a_resume_that_changes_the_seed_builds_the_data_iterator_once(monkeypatch, layout_changes):
    """A new seed and, with it, another layout: the iterator (its workers) is built once, not
    once for the seed and once more for the layout."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    loop.dataloader.sampler.seed = 11
    loop.dataloader_iterator = CountedIterator(loop.dataloader)
    CountedIterator.built = 0
    saved = dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1 if layout_changes else 2)
    start = follow_resume(loop, seed_at_build=11, seed=0, saved=saved)
    assert start == ((0, 3, 3) if layout_changes else (0, 0, 0))
    assert CountedIterator.built == 1 and loop.dataloader.sampler.seed == 0
    if layout_changes:  # the pairs of seed 0 from where the run stopped
        assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
        pairs = loop.dataloader.sampler.epoch_pairs(0).reshape(-1).tolist()
        assert next(loop.dataloader_iterator).tolist()[:2] == pairs[6:]


@pytest.mark.parametrize('sampler_seed, seed_at_build, seed', [(5, 11, 0), (11, 11, 11)])
def test_a_seed_of_the_sampler_or_an_unchanged_one_is_kept(monkeypatch, sampler_seed, seed_at_build, seed):
    loader = pair_loader(monkeypatch=monkeypatch)
    loader.sampler.seed = sampler_seed  # 5: given to the sampler in the config, not the runner's
    loop = loop_of(IterBasedTrainLoop, loader)
    loop.dataloader_iterator = iterator = object()
    assert follow_resume(loop, seed_at_build, seed, saved=None) == (0, 0, 0)
    assert loader.sampler.seed == sampler_seed and loop.dataloader_iterator is iterator  # not built again


def test_a_new_seed_under_an_epoch_based_loop_has_no_iterator_to_build(monkeypatch):
    loader = pair_loader(monkeypatch=monkeypatch)
    loader.sampler.seed = 11
    assert follow_resume(loop_of(EpochBasedTrainLoop, loader), 11, 0, saved=None) == (0, 0, 0)
    assert loader.sampler.seed == 0


def resumed_loop(monkeypatch, batch_size, iteration):
    loader = pair_loader(batch_size=batch_size, monkeypatch=monkeypatch)
    loader.sampler.infinite = True
    loop = loop_of(IterBasedTrainLoop, loader)
    loop._iter = iteration
    loop.dataloader_iterator = loops._InfiniteDataloaderIterator(loader)
    return loop


def test_a_resume_on_the_same_layout_is_left_to_mmengines_skip(monkeypatch):
    """The same world size and batch size: MMEngine's skip of the trained batches, which also
    replays the data pipeline's random draws, stays; a fresh run records where its pairs start."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    saved = pair_stream_meta(loop, (0, 0, 0))
    assert saved == dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=2)
    iterator = loop.dataloader_iterator
    assert follow_resumed_layout(loop, saved) == (0, 0, 0) and loop.dataloader_iterator is iterator
    assert follow_resumed_layout(loop, None) == (0, 0, 0)  # a checkpoint of an earlier version: as before
    assert pair_stream_meta(loop_of(EpochBasedTrainLoop, loop.dataloader), (0, 0, 0)) is None


def test_a_resume_on_another_batch_size_starts_the_pairs_where_the_run_stopped(monkeypatch):
    """Trained 3 iterations with batch 2 (3 of epoch 0's 4 pairs); resumed with batch 4: MMEngine's
    3 skip calls load nothing, then the batches are pair 3 of epoch 0 and the epoch-1 pairs."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    saved = dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1)
    assert follow_resumed_layout(loop, saved) == (0, 3, 3)
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
    pairs = [loop.dataloader.sampler.epoch_pairs(epoch).reshape(-1).tolist() for epoch in (0, 1)]
    assert [next(loop.dataloader_iterator).tolist() for _ in range(2)] == [pairs[0][6:] + pairs[1][:2],
                                                                             pairs[1][2:6]]
    assert pair_stream_meta(loop, (0, 3, 3)) == dict(epoch=0, pair=3, iter=3, world_size=1, pairs_per_iter=2)


def test_a_finite_sampler_records_no_pair_stream(monkeypatch):
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    loop.dataloader.sampler.infinite = False  # set so in the config
    assert pair_stream_meta(loop, (0, 0, 0)) is None


def test_a_second_resume_after_a_resume_on_another_layout(monkeypatch):
    """Trained 3 iterations of 1 pair, resumed with 2 pairs a step (start (0, 3, 3)), saved at
    iteration 5, resumed again with 2 pairs a step: 3 + 2 * 2 = 7 pairs trained, so the
    pairs go on at pair 3 of epoch 1 (4 pairs an epoch); MMEngine's 5 skips load nothing."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=5)
    saved = dict(epoch=0, pair=3, iter=3, world_size=1, pairs_per_iter=2)
    assert follow_resumed_layout(loop, saved) == (1, 3, 5)
    assert [next(loop.dataloader_iterator) for _ in range(5)] == [None] * 5
    pairs = [loop.dataloader.sampler.epoch_pairs(epoch).reshape(-1).tolist() for epoch in (1, 2)]
    assert next(loop.dataloader_iterator).tolist() == pairs[0][6:] + pairs[1][:2]


def test_a_finite_sampler_is_left_to_mmengines_skip(monkeypatch):
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    loop.dataloader.sampler.infinite = False
    iterator = loop.dataloader_iterator
    saved = dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1)
    assert follow_resumed_layout(loop, saved) == (0, 0, 0) and loop.dataloader_iterator is iterator


def test_an_iterator_whose_workers_drew_indices_is_built_again(monkeypatch):
    """With workers, the loop's iterator has drawn indices already: the resumed position
    needs a new one."""
    monkeypatch.setattr(pair_sampler, 'get_dist_info', lambda: (0, 1))
    monkeypatch.setattr(class_index, 'get_dist_info', lambda: (0, 1))
    loader = DataLoader(Indices(), batch_size=4, num_workers=1,
                        sampler=IntraClassPairSampler(Indices(), seed=0, infinite=True))
    loop = loop_of(IterBasedTrainLoop, loader)
    loop._iter = 3
    loop.dataloader_iterator = loops._InfiniteDataloaderIterator(loader)
    assert follow_resumed_layout(loop, dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1)) == (0, 3, 3)
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
    pairs = [loader.sampler.epoch_pairs(epoch).reshape(-1).tolist() for epoch in (0, 1)]
    assert next(loop.dataloader_iterator).tolist() == pairs[0][6:] + pairs[1][:2]


def test_a_checkpoint_loaded_at_iteration_0_leaves_the_pairs_at_their_start(monkeypatch):
    """``load_from`` without resume: MMEngine calls after_load_checkpoint, so a pair stream is
    known, but the run trains from iteration 0 and its pairs start at the beginning."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=0)
    iterator = loop.dataloader_iterator
    saved = dict(epoch=0, pair=3, iter=3, world_size=1, pairs_per_iter=1)
    assert follow_resumed_layout(loop, saved) == (0, 0, 0) and loop.dataloader_iterator is iterator


def test_another_sampler_records_no_pair_stream(monkeypatch):
    from torch.utils.data import SequentialSampler
    loader = DataLoader(Indices(), batch_size=4, sampler=SequentialSampler(Indices()))
    assert pair_stream_meta(loop_of(IterBasedTrainLoop, loader), (0, 0, 0)) is None


def test_the_number_of_processes_is_part_of_the_layout(monkeypatch):
    """Two processes of 2 pairs a step: the same on resume leaves MMEngine's skip; one process
    of 2 pairs (half the pairs a step) goes on where the two-process run stopped."""
    monkeypatch.setattr(pair_sampler, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(class_index, 'get_dist_info', lambda: (0, 1))
    loader = DataLoader(Indices(), batch_size=4, sampler=IntraClassPairSampler(Indices(), seed=0, infinite=True))
    loop = loop_of(IterBasedTrainLoop, loader)
    loop._iter = 1
    loop.dataloader_iterator = iterator = loops._InfiniteDataloaderIterator(loader)
    assert pair_stream_meta(loop, (0, 0, 0))['world_size'] == 2
    same = dict(epoch=0, pair=0, iter=0, world_size=2, pairs_per_iter=2)
    assert follow_resumed_layout(loop, same) == (0, 0, 0) and loop.dataloader_iterator is iterator
    assert follow_resumed_layout(loop, dict(same, world_size=1)) == (0, 2, 1)
