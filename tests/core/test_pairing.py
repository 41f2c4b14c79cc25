import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipswap_mm.core.pairing import ClassSets, _LeftoverQueue, _pair_leftovers, build_intra_class_pairs, pairing_keys

class_sets_strategy = st.lists(st.lists(st.integers(0, 6), max_size=3, unique=True), min_size=1, max_size=80)


def shares_class(class_sets, a, b):
    return bool(set(class_sets[a]) & set(class_sets[b])) or (not len(class_sets[a]) and not len(class_sets[b]))


@settings(max_examples=80, deadline=None)
@given(raw=class_sets_strategy, seed=st.integers(0, 2**31), rule=st.sampled_from(['random', 'dominant']))
def test_pairs_share_a_class_and_cover_the_epoch(raw, seed, rule):
    class_sets = [np.asarray(c, dtype=np.int64) for c in raw]
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), rule)
    assert pairs.shape == ((len(raw) + 1) // 2, 2)
    for a, b in pairs:
        assert a == b or shares_class(class_sets, a, b)
    seen = set(pairs.ravel().tolist())
    # only the counted leftovers may sit an epoch out
    assert len(raw) - len(seen) <= stats.dropped
    assert stats.self_pairs == sum(int(a == b) for a, b in pairs)


def test_same_seed_same_pairs_other_seed_other_pairs():
    class_sets = [np.array([i % 5]) for i in range(200)]
    first, _ = build_intra_class_pairs(class_sets, np.random.default_rng(3))
    again, _ = build_intra_class_pairs(class_sets, np.random.default_rng(3))
    other, _ = build_intra_class_pairs(class_sets, np.random.default_rng(4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_single_image_class_pairs_with_itself():
    class_sets = [np.array([0]), np.array([0]), np.array([7])]
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(0))
    assert sorted(map(sorted, pairs.tolist())) == [[0, 1], [2, 2]]
    assert stats.self_pairs == 1 and stats.dropped == 0


def test_background_only_images_pair_among_themselves():
    class_sets = [np.array([], dtype=np.int64)] * 4 + [np.array([1])] * 2
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(0))
    assert stats.background_only == 4
    for a, b in pairs:
        assert (a < 4) == (b < 4)


def test_multi_label_leftovers_pair_with_each_other():
    # keys 0 and 1 each hold one image; the two leftovers share class 2, so they pair up
    class_sets = [np.array([0, 2]), np.array([1, 2])]
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(5), 'dominant')
    assert stats.leftovers == 2 and stats.repeated == 0 and stats.self_pairs == 0 and stats.dropped == 0
    assert sorted(pairs.ravel().tolist()) == [0, 1]


@st.composite
def repeated_dataset(draw):
    """``(class_sets, image_ids)`` of up to 160 indices reading up to 80 images, some repeated."""
    raw = draw(class_sets_strategy)
    image_ids = np.asarray([c % len(raw) for c in draw(st.lists(st.integers(0, 79), min_size=1, max_size=160))])
    return [np.asarray(raw[i], dtype=np.int64) for i in image_ids], image_ids


@settings(max_examples=80, deadline=None)
@given(dataset=repeated_dataset(), seed=st.integers(0, 2**31), rule=st.sampled_from(['random', 'dominant']))
def test_pairs_of_repeated_images_share_a_class_and_hold_one_image_only_when_they_must(dataset, seed, rule):
    class_sets, image_ids = dataset
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), rule, image_ids)
    assert pairs.shape == ((len(image_ids) + 1) // 2, 2)
    for a, b in pairs:
        assert image_ids[a] == image_ids[b] or shares_class(class_sets, a, b)
    assert stats.self_pairs == sum(int(image_ids[a] == image_ids[b]) for a, b in pairs)
    assert len(image_ids) - len(set(pairs.ravel().tolist())) <= stats.dropped
    for a, b in pairs:  # one image in a pair only when no other image shares any of its classes
        if image_ids[a] == image_ids[b]:
            assert not any(image_ids[j] != image_ids[a] and shares_class(class_sets, a, j)
                           for j in range(len(image_ids)))


@settings(max_examples=60, deadline=None)
@given(num_images=st.integers(2, 30), times=st.integers(1, 60), seed=st.integers(0, 2**31))
def test_repeated_images_pair_with_other_images(num_images, times, seed):
    """A dataset repeated ``times`` times (MMSegmentation's DRIVE config: 20 images of one
    class, 40000 times) never pairs an image with a copy of itself."""
    image_ids = np.tile(np.arange(num_images), times)
    class_sets = [np.array([1])] * len(image_ids)
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), 'random', image_ids)
    assert stats.self_pairs == 0 and not (image_ids[pairs[:, 0]] == image_ids[pairs[:, 1]]).any()
    assert set(pairs.ravel().tolist()) == set(range(len(image_ids)))


def test_distinct_images_pair_as_without_image_ids():
    class_sets = [np.array([i % 5]) for i in range(101)]
    plain, _ = build_intra_class_pairs(class_sets, np.random.default_rng(3))
    with_ids, _ = build_intra_class_pairs(class_sets, np.random.default_rng(3), image_ids=np.arange(101))
    assert np.array_equal(plain, with_ids)


@pytest.mark.parametrize('rule', ['random', 'dominant'])
def test_a_repeated_image_alone_in_its_class_pairs_through_its_other_classes(rule):
    """ClassBalancedDataset repeats an image for a class only it holds: its copies meet in that
    class, and look for partners through its other classes (here class 2, held by B and C)."""
    image_ids = np.array([0, 0, 1, 2])  # A twice, then B and C
    class_sets = [np.array([1, 2]), np.array([1, 2]), np.array([2]), np.array([2])]
    for seed in range(50):
        pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), rule, image_ids)
        assert stats.self_pairs == 0 and not (image_ids[pairs[:, 0]] == image_ids[pairs[:, 1]]).any()


@pytest.mark.parametrize('rule', ['random', 'dominant'])
def test_every_copy_a_class_balanced_dataset_asks_for_is_drawn(rule):
    """200 images of class 1 and one image X of classes 1 and 5 (rare), repeated 15 times:
    the copies keyed 5 meet only each other and split pairs of class 1, so none is dropped
    (until 2026-11-24 about one in five was, every epoch)."""
    class_sets = [np.array([1])] * 200 + [np.array([5, 1])] * 15
    image_ids = np.r_[np.arange(200), np.full(15, 200)]
    for seed in range(20):
        pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), rule, image_ids)
        assert stats.dropped == 0 and len(pairs) == 108
        assert (image_ids[pairs] == 200).sum() == 15  # every copy of X
        assert not (image_ids[pairs[:, 0]] == image_ids[pairs[:, 1]]).any()
        assert all(set(class_sets[a]) & set(class_sets[b]) for a, b in pairs)


@pytest.mark.parametrize('rule', ['random', 'dominant'])
def test_two_entries_of_one_image_with_other_classes_split_a_pair_of_a_class_both_hold(rule):
    """VOC12aug reads one JPEG through two label folders: entry a holds {5, 1}, a' only {5}.
    Their twin pair must not split a pair of class 1, which a' does not hold."""
    class_sets = [np.array([1])] * 20 + [np.array([5, 1]), np.array([5])]
    image_ids = np.r_[np.arange(20), 20, 20]
    for seed in range(100):
        pairs, _ = build_intra_class_pairs(class_sets, np.random.default_rng(seed), rule, image_ids)
        assert all(set(class_sets[a]) & set(class_sets[b]) for a, b in pairs), seed


def test_class_zero_is_a_class_and_the_pairs_come_out_in_random_order():
    class_sets = [np.array([i // 4]) for i in range(40)]  # class 0 included
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(0))
    assert stats.background_only == 0
    keys = [i // 4 for i in pairs[:, 0]]
    assert keys != sorted(keys)  # not grouped by class: batches mix classes


def reference_pair_leftovers(leftovers, class_sets, keys, image_ids, rng):
    """The rule of ``_pair_leftovers`` written out plainly (quadratic): each leftover, in random
    order, takes the first later one not taken, of another image, sharing a class (or both
    background-only); else a random other image of its key, else of any of its classes, else itself."""
    sets = {int(i): set(int(c) for c in class_sets[i]) for i in leftovers}
    unused = [int(i) for i in rng.permutation(leftovers)]
    taken, result = set(), []
    for i in unused:
        if i in taken:
            continue
        taken.add(i)
        mate = next((j for j in unused if j not in taken and image_ids[j] != image_ids[i]
                     and (sets[i] & sets[j] or (keys[i] < 0 and keys[j] < 0))), None)
        if mate is not None:
            taken.add(mate)
            result.append((i, mate, 2))
            continue
        same_key = np.flatnonzero((keys == keys[i]) & (image_ids != image_ids[i]))
        sharing = [j for j in range(len(class_sets)) if image_ids[j] != image_ids[i]
                   and set(int(c) for c in class_sets[j]) & sets[i]]
        if len(same_key):
            partner = int(same_key[rng.integers(len(same_key))])
        elif sharing:
            partner = sharing[rng.integers(len(sharing))]
        else:
            partner = i
        result.append((i, partner, 1 if partner != i else 0))
    result.sort(key=lambda p: p[2] != 2)
    return result


@settings(max_examples=150, deadline=None)
@given(dataset=repeated_dataset(), seed=st.integers(0, 2**31), rule=st.sampled_from(['random', 'dominant']))
def test_leftovers_pair_as_the_plain_rule_says(dataset, seed, rule):
    """The class queues of ``_pair_leftovers`` find the partners the plain scan finds."""
    class_sets, image_ids = dataset
    keys = pairing_keys(class_sets, np.random.default_rng(seed), rule)
    rng = np.random.default_rng(seed + 1)
    leftovers = rng.permutation(len(image_ids))[:rng.integers(1, len(image_ids) + 1)]
    expected = reference_pair_leftovers(leftovers, class_sets, keys, image_ids, np.random.default_rng(seed + 2))
    found = _pair_leftovers(leftovers, ClassSets.of(class_sets), keys, image_ids, np.random.default_rng(seed + 2))
    assert found == expected


def test_copies_of_an_image_whose_class_no_other_image_holds_pair_with_themselves():
    """A RepeatDataset of 20 images, one of them the only holder of its class: its copies
    become self-pairs (no other image shares anything with them); the others pair freely."""
    image_ids = np.tile(np.arange(20), 50)
    class_sets = [np.array([1]) if i == 19 else np.array([0]) for i in image_ids]
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(0), 'random', image_ids)
    lone = image_ids[pairs] == 19
    assert (lone[:, 0] == lone[:, 1]).all()  # never with another image
    assert stats.self_pairs == lone[:, 0].sum() > 0 and stats.leftovers == 50
    assert not (image_ids[pairs[~lone[:, 0], 0]] == image_ids[pairs[~lone[:, 0], 1]]).any()


@pytest.mark.parametrize('rule', ['random', 'dominant'])
def test_the_surplus_sits_out_from_the_largest_class_not_the_rare_ones(rule):
    """101 images of class 0, 3 of class 1, 1 of class 2: three leftovers (one of each class,
    none sharing a class) for two places. The one left out is an image of class 0, every
    epoch a different one; the rare images train every epoch."""
    class_sets = [np.array([0])] * 101 + [np.array([1])] * 3 + [np.array([2])]
    left_out = set()
    for seed in range(40):
        pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), rule)
        assert len(pairs) == 53 and stats.dropped == 1 and stats.self_pairs == 1
        missing = set(range(105)) - set(pairs.ravel().tolist())
        assert len(missing) == 1 and missing.pop() < 101
        left_out |= set(range(101)) - set(pairs.ravel().tolist())
    assert len(left_out) > 10


@settings(max_examples=80, deadline=None)
@given(raw=class_sets_strategy, seed=st.integers(0, 2**31), rule=st.sampled_from(['random', 'dominant']))
def test_class_sets_hold_every_images_classes_and_pair_as_a_list_of_arrays_does(raw, seed, rule):
    arrays = [np.asarray(c, dtype=np.int64) for c in raw]
    sets = ClassSets.of(arrays)
    assert len(sets) == len(arrays) and all(np.array_equal(sets[i], arrays[i]) for i in range(len(arrays)))
    assert np.array_equal(sets[-1], arrays[-1])
    assert [s.tolist() for s in sets[1::2]] == [c.tolist() for c in arrays[1::2]]
    picks = np.random.default_rng(seed).integers(len(arrays), size=2 * len(arrays))
    assert all(np.array_equal(got, arrays[i]) for got, i in zip(sets.take(picks), picks))
    # the keys as the plain rule draws them: the (draw * length)-th class, the first for 'dominant'
    draws = np.random.default_rng(seed).random(len(arrays))
    expected = [-1 if not len(c) else c[0] if rule == 'dominant' else c[int(d * len(c))] for c, d in zip(arrays, draws)]
    assert pairing_keys(sets, np.random.default_rng(seed), rule).tolist() == expected
    plain, _ = build_intra_class_pairs(arrays, np.random.default_rng(seed), rule)
    gathered, _ = build_intra_class_pairs(sets, np.random.default_rng(seed), rule)
    assert np.array_equal(plain, gathered)


def test_class_sets_refuse_offsets_that_do_not_fit():
    with pytest.raises(ValueError, match='offsets'):
        ClassSets(np.arange(3), np.array([0, 2]))
    with pytest.raises(IndexError):
        ClassSets.of([np.array([1])])[1]


def test_at_equal_rarity_a_repeated_partner_keeps_its_place_before_a_self_pair():
    """X (classes 5 and 0) and Y (class 7) are each alone in their key group; one place is left.
    X pairs with an image of class 0 and trains with a swap; Y's self-pair has none: Y sits out."""
    class_sets = [np.array([0])] * 10 + [np.array([5, 0]), np.array([7])]
    for seed in range(30):
        pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(seed), 'dominant')
        assert stats.dropped == 1 and stats.repeated == 1 and stats.self_pairs == 0
        assert 10 in pairs and 11 not in pairs


def test_class_ids_must_not_be_negative_and_large_ones_pair():
    with pytest.raises(ValueError, match='class ids must be >= 0'):
        build_intra_class_pairs([np.array([-3]), np.array([0])], np.random.default_rng(0))
    # a surplus to drop, keyed on a class id far beyond the number of classes
    class_sets = [np.array([2**40]), np.array([5]), np.array([7])] + [np.array([0])] * 4
    pairs, stats = build_intra_class_pairs(class_sets, np.random.default_rng(0))
    assert stats.dropped == 1 and len(pairs) == 4


def test_class_sets_take_counts_negative_indices_from_the_end():
    sets = ClassSets.of([[1, 2], [5], [3], []])
    assert [s.tolist() for s in sets.take([-4, -1, 2])] == [[1, 2], [], [3]]
    with pytest.raises(IndexError):
        sets.take([-5])
    with pytest.raises(IndexError):
        sets.take([4])
    assert len(sets.take([])) == 0


def test_a_class_queue_finds_the_first_leftover_of_another_image():
    """Entries 0..4 of one class's queue read images X X X Y Z (their positions 10..14)."""
    queue = _LeftoverQueue(np.arange(10, 15), np.array([0] * 10 + [1, 1, 1, 2, 3]))
    taken = np.zeros(15, dtype=bool)
    assert queue.first(taken, 1) == 13  # past the run of X
    assert queue.first(taken, 1) == 13  # where the last search for X stopped, not past it
    assert queue.first(taken, 2) == 10  # Y: the first X, still not taken
    taken[[10, 11]] = True
    assert queue._not_taken(0, taken) == 2 and queue._not_taken(0, taken) == 2  # jumps end at the first not taken
    taken[13] = True
    assert queue.first(taken, 1) == 14  # X: past its own and a taken entry


def test_leftovers_with_many_copies_of_few_images_pair_as_the_plain_rule_says():
    rng = np.random.default_rng(0)
    for case in range(300):
        num_images = int(rng.integers(2, 12))
        raw = [rng.choice(4, size=int(rng.integers(0, 3)), replace=False) for _ in range(num_images)]
        image_ids = rng.integers(0, num_images, size=int(rng.integers(2, 60)))
        class_sets = ClassSets.of([raw[i] for i in image_ids])
        keys = pairing_keys(class_sets, rng, 'dominant' if case % 2 else 'random')
        leftovers = rng.permutation(len(image_ids))[:int(rng.integers(1, len(image_ids) + 1))]
        expected = reference_pair_leftovers(leftovers, class_sets, keys, image_ids, np.random.default_rng(case))
        assert _pair_leftovers(leftovers, class_sets, keys, image_ids, np.random.default_rng(case)) == expected, case
