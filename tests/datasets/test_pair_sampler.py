import numpy as np
import pytest
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset
from torch.utils.data import DataLoader

from ipswap_mm.datasets import class_index, pair_sampler
from ipswap_mm.datasets.pair_sampler import IntraClassPairSampler


class Instances:
    """A detection-style dataset: image i holds the classes listed for it."""

    metainfo = dict(classes=tuple('abcdefgh'))

    def __init__(self, class_lists):
        self.class_lists = class_lists

    def __len__(self):
        return len(self.class_lists)

    def __getitem__(self, index):
        return index

    def get_data_info(self, index):
        return dict(instances=[dict(bbox_label=c, ignore_flag=0) for c in self.class_lists[index]])


def random_dataset(size=37, seed=0):
    rng = np.random.default_rng(seed)
    return Instances([list(rng.choice(8, size=rng.integers(1, 3), replace=False)) for _ in range(size)])


def sampler_on_rank(dataset, rank, world, monkeypatch, **kwargs):
    monkeypatch.setattr(pair_sampler, 'get_dist_info', lambda: (rank, world))
    monkeypatch.setattr(class_index, 'get_dist_info', lambda: (0, 1))
    return IntraClassPairSampler(dataset, seed=7, **kwargs)


def test_batches_hold_whole_same_class_pairs(monkeypatch):
    dataset = random_dataset()
    sampler = sampler_on_rank(dataset, 0, 1, monkeypatch)
    for batch in DataLoader(dataset, batch_size=4, sampler=sampler):
        batch = batch.tolist()
        for a, b in zip(batch[0::2], batch[1::2]):
            assert a == b or set(dataset.class_lists[a]) & set(dataset.class_lists[b])


@pytest.mark.parametrize('world', [2, 3])
def test_ranks_get_disjoint_whole_pairs_that_add_up_to_the_single_process_set(monkeypatch, world):
    dataset = random_dataset()
    single = sampler_on_rank(dataset, 0, 1, monkeypatch)
    single.set_epoch(3)
    expected = {tuple(p) for p in single.rank_pairs(3).tolist()}
    shares = []
    for rank in range(world):
        sampler = sampler_on_rank(dataset, rank, world, monkeypatch)
        sampler.set_epoch(3)
        flat = list(sampler)
        assert len(flat) == len(sampler)
        shares.append([tuple(flat[i:i + 2]) for i in range(0, len(flat), 2)])
    assert len({len(share) for share in shares}) == 1
    union = set().union(*map(set, shares))
    assert union == expected
    padded = len(shares[0]) * world - len(single.epoch_pairs(3))
    assert sum(len(s) for s in shares) - padded == len(expected)


def test_deterministic_per_seed_and_epoch(monkeypatch):
    dataset = random_dataset()
    first = sampler_on_rank(dataset, 0, 1, monkeypatch)
    second = sampler_on_rank(dataset, 0, 1, monkeypatch)
    assert list(first) == list(second)
    epoch0 = list(first)
    first.set_epoch(1)
    assert list(first) != epoch0


def test_no_shuffle_keeps_pairs(monkeypatch):
    """Every epoch the same pairs, but for the surplus places (pairs repeating an image,
    here one more than places), whose kept pairs rotate: no image sits out every epoch."""
    dataset = random_dataset()
    sampler = sampler_on_rank(dataset, 0, 1, monkeypatch, shuffle=False)
    _, stats = sampler._pairs_and_stats(0)
    assert stats.dropped == 1  # what makes this case
    epochs = []
    for epoch in range(12):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    fresh = [{tuple(p) for p in zip(e[0::2], e[1::2]) if len(set(p)) == 2} for e in epochs]
    for pairs in fresh[1:]:
        assert len(pairs ^ fresh[0]) <= 2 * stats.repeated  # only the surplus places differ
    assert len({tuple(e) for e in epochs}) > 1
    assert set().union(*map(set, epochs)) == set(range(len(dataset)))  # nobody left out for good
    no_surplus = sampler_on_rank(Instances([[0], [1]] * 8), 0, 1, monkeypatch, shuffle=False)
    assert no_surplus._pairs_and_stats(0)[1].dropped == 0  # nothing competes: the very same epochs
    first = list(no_surplus)
    no_surplus.set_epoch(5)
    assert list(no_surplus) == first


def test_length_is_constant_and_even(monkeypatch):
    sampler = sampler_on_rank(random_dataset(size=11), 1, 2, monkeypatch)
    assert len(sampler) == 2 * 3
    for epoch in range(4):
        sampler.set_epoch(epoch)
        assert len(list(sampler)) == len(sampler)


def test_an_infinite_sampler_runs_the_epochs_back_to_back(monkeypatch):
    """The same epochs, in one iterator; ``infinite`` is read when an epoch runs out."""
    finite = sampler_on_rank(random_dataset(size=11), 1, 2, monkeypatch)
    epochs = []
    for epoch in range(3):
        finite.set_epoch(epoch)
        epochs += list(finite)
    endless = sampler_on_rank(random_dataset(size=11), 1, 2, monkeypatch)
    indices = iter(endless)
    first = [next(indices)]  # the iterator has started before the hook decides
    endless.infinite = True
    assert first + [next(indices) for _ in range(len(epochs) - 1)] == epochs
    assert endless.epoch_drawn == 2 and len(endless) == len(finite)


def test_set_epoch_does_not_send_a_running_iterator_back(monkeypatch):
    """A dataloader's workers draw indices ahead of training, past an epoch's end when epochs are
    short; MMEngine then calls ``set_epoch(0)`` (``before_train_epoch``, after an iteration-based
    loop made its iterator). The iterator must still run the epochs back to back, none twice."""
    sampler = sampler_on_rank(random_dataset(size=6), 0, 1, monkeypatch, infinite=True)
    epochs = sum((sampler.rank_pairs(epoch).reshape(-1).tolist() for epoch in range(3)), [])
    indices = iter(sampler)
    drawn = [next(indices) for _ in range(len(sampler) + 2)]  # prefetched into epoch 1
    sampler.set_epoch(0)
    drawn += [next(indices) for _ in range(len(epochs) - len(drawn))]
    assert drawn == epochs
    assert sampler.epoch_drawn == 2 and sampler.epoch == 0


def test_no_epoch_end_stalls_an_iteration_based_loop(monkeypatch):
    """MMEngine's iteration-based loop pauses 2 s (``time.sleep``) and restarts the dataloader
    when a finite sampler runs out; an infinite one never runs out."""
    from mmengine.runner import loops
    sleeps = []
    monkeypatch.setattr(loops.time, 'sleep', sleeps.append)
    dataset = random_dataset(size=12)
    batches = {}
    for infinite in (False, True):
        sampler = sampler_on_rank(dataset, 0, 1, monkeypatch, infinite=infinite)
        iterator = loops._InfiniteDataloaderIterator(DataLoader(dataset, batch_size=4, sampler=sampler))
        batches[infinite] = [next(iterator).tolist() for _ in range(3 * 3)]  # 3 epochs of 3 batches
        assert len(sleeps) == (0 if infinite else 2)
        sleeps.clear()
    assert batches[True] == batches[False]


def rank_stream(sampler, count, start=(0, 0)):
    """The first ``count`` pairs a rank's infinite sampler yields after ``resume_at(*start)``."""
    sampler.infinite = True
    sampler.resume_at(*start)
    indices = iter(sampler)
    return [(next(indices), next(indices)) for _ in range(count)]


@pytest.mark.parametrize('old, new_world', [((2, 1), 1), ((1, 2), 2), ((3, 2), 2), ((1, 1), 4), ((2, 2), 2)])
@pytest.mark.parametrize('iterations', [1, 4, 7, 25])
def test_a_run_resumed_on_another_layout_goes_on_with_the_pairs_where_it_stopped(monkeypatch, old, new_world,
                                                                                iterations):
    """``old``: (world size, pairs a rank trains an iteration) before a resume, on ``new_world``
    ranks after it: the pairs the ranks trained before it and those they train from
    ``stream_position`` on make every epoch's pairs once each, none skipped, none twice (but
    the padding that fills the ranks' shares past an epoch's end, which repeats pairs of that
    epoch). The batch size after the resume only sets how fast the ranks go on."""
    dataset = random_dataset(size=23)  # 12 pairs: shares that do not divide evenly
    single = sampler_on_rank(dataset, 0, 1, monkeypatch)
    epochs = {epoch: [tuple(p) for p in single.epoch_pairs(epoch).tolist()] for epoch in range(20)}
    trained = {epoch: [] for epoch in epochs}  # every rank's pairs, by epoch
    world, per_iter = old
    for rank in range(world):
        sampler = sampler_on_rank(dataset, rank, world, monkeypatch)
        taken, epoch = iterations * per_iter, 0
        while taken:
            share = [tuple(p) for p in sampler.rank_pairs(epoch).tolist()][:taken]
            trained[epoch] += share
            taken, epoch = taken - len(share), epoch + 1
    epoch, pair = single.stream_position((0, 0), iterations, world, per_iter)
    assert sorted(set(trained[epoch])) == sorted(set(epochs[epoch][:pair]))  # the epoch it stopped in
    rest = -(-(len(epochs[epoch]) - pair) // new_world)  # pairs a rank trains to the epoch's end
    for rank in range(new_world):
        sampler = sampler_on_rank(dataset, rank, new_world, monkeypatch)
        stream = rank_stream(sampler, rest + sampler.pairs_per_rank, (epoch, pair))
        trained[epoch] += stream[:rest]
        trained[epoch + 1] += stream[rest:]
    for number in (epoch, epoch + 1):
        assert set(trained[number]) == set(epochs[number]), number
        assert len(trained[number]) - len(set(trained[number])) < max(world, new_world), number  # padding only
    for number in range(epoch):
        assert set(trained[number]) == set(epochs[number])


def test_a_resume_position_from_a_resumed_position(monkeypatch):
    """A run resumed on another layout and then again: positions chain."""
    sampler = sampler_on_rank(random_dataset(size=23), 0, 1, monkeypatch)  # 12 pairs
    assert sampler.stream_position((0, 0), 5, 2, 1) == (0, 10)
    assert sampler.stream_position((0, 10), 1, 1, 2) == (1, 0)  # the epoch's last 2 pairs
    assert sampler.stream_position((0, 10), 2, 3, 1) == (1, 3)  # 3 ranks, 2 pairs left: a padded share
    # 18 pairs a rank: 4 to epoch 2's end, 6 in each of epochs 3 and 4, 2 (4 of both ranks) into epoch 5
    assert sampler.stream_position((2, 4), 9, 2, 2) == (5, 4)
    assert sampler.stream_position((2, 4), 8, 2, 2) == (5, 0)
    assert sampler.stream_position((0, 0), 0, 2, 1) == (0, 0)


def test_bad_pair_key_names_the_key(monkeypatch):
    with pytest.raises(ValueError, match='pair_key'):
        sampler_on_rank(random_dataset(), 0, 1, monkeypatch, pair_key='largest')


class OneClassImages(BaseDataset):
    """``num_images`` images, each holding one object of class 0."""

    METAINFO = dict(classes=('digit',))

    def __init__(self, num_images):
        self.num_images = num_images
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(img_path=f'{i}.jpg', instances=[dict(bbox_label=0, ignore_flag=0)])
                for i in range(self.num_images)]


@pytest.mark.parametrize('wrap', ['repeat', 'concat'])
def test_an_image_is_never_paired_with_its_copy(monkeypatch, wrap):
    """RepeatDataset (MMSegmentation's DRIVE config) and a ConcatDataset of lists naming the
    same images read one image under several indices."""
    dataset = dict(repeat=lambda: RepeatDataset(OneClassImages(5), times=40),
                   concat=lambda: ConcatDataset([OneClassImages(5)] * 3))[wrap]()
    sampler = sampler_on_rank(dataset, 0, 1, monkeypatch)
    for epoch in range(3):
        for a, b in sampler.epoch_pairs(epoch).tolist():
            assert dataset.get_data_info(a)['img_path'] != dataset.get_data_info(b)['img_path']


def test_rank_0_logs_an_epochs_pairing_once(monkeypatch):
    messages = []
    monkeypatch.setattr(pair_sampler, 'print_log', lambda message, **kwargs: messages.append(message))
    dataset = random_dataset()  # 37 images: repeats to report
    sampler_on_rank(dataset, 1, 2, monkeypatch).rank_pairs(0)
    assert messages == []  # rank 1 reports nothing
    sampler = sampler_on_rank(dataset, 0, 2, monkeypatch)
    sampler.rank_pairs(0)
    sampler.rank_pairs(0, 3)
    assert len(messages) == 1 and messages[0].startswith('IntraClassPairSampler epoch 0')


def test_the_ranks_padding_repeats_the_first_pairs(monkeypatch):
    dataset = random_dataset()  # 19 pairs on 3 ranks: 2 padding pairs
    pairs = sampler_on_rank(dataset, 0, 1, monkeypatch).epoch_pairs(0)
    last = sampler_on_rank(dataset, 1, 3, monkeypatch).rank_pairs(0)
    assert np.array_equal(last[-1], pairs[0])  # place 19 + 1 = 20: pair 0 again
    rest = sampler_on_rank(dataset, 2, 3, monkeypatch).rank_pairs(0, 5)  # 14 pairs from 5: one padding pair
    assert np.array_equal(rest[-1], pairs[5])


def test_resume_at_holds_for_one_iterator_only(monkeypatch):
    sampler = sampler_on_rank(random_dataset(size=12), 0, 1, monkeypatch, infinite=False)
    sampler.resume_at(1, 2)
    assert list(sampler) == sampler.rank_pairs(1, 2).reshape(-1).tolist()
    assert list(sampler) == sampler.rank_pairs(0).reshape(-1).tolist()  # the next epoch's iterator: as set_epoch says
