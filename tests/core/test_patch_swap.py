import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ipswap_mm.core.patch_swap import PatchSwap, pair_valid_hw, swap_pairs


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=60, deadline=None)
@given(pairs=st.integers(1, 4), patch=st.integers(1, 9), height=st.integers(1, 40), width=st.integers(1, 40),
       ratio=st.floats(0, 1), prob=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_swapped_pixels_keep_their_labels(pairs, patch, height, width, ratio, prob, seed):
    """Every output pixel, with its label, comes from the same position of one image of its pair."""
    swap = PatchSwap(patch, swap_prob=prob, swap_ratio=ratio)
    images = torch.rand(2 * pairs, 3, height, width)
    labels = torch.randint(0, 255, (2 * pairs, 1, height, width))
    cells = swap.sample_cells(pairs, height, width, generator(seed))
    mask = swap.cells_to_pixels(cells, height, width)
    before = images.clone()
    out_images, out_labels = swap_pairs(images, mask), swap_pairs(labels, mask)
    assert torch.equal(images, before)  # the input batch is left as it was
    partner = torch.arange(2 * pairs) ^ 1
    came_from_partner = mask.repeat_interleave(2, 0)[:, None]
    assert torch.equal(out_images, torch.where(came_from_partner, images[partner], images))
    assert torch.equal(out_labels, torch.where(came_from_partner, labels[partner], labels))
    # the pair as a whole keeps its pixels: a swap is a permutation inside the pair
    assert torch.equal((out_images[0::2] + out_images[1::2]), (images[0::2] + images[1::2]))


@settings(max_examples=40, deadline=None)
@given(pairs=st.integers(1, 4), patch=st.integers(1, 8), grid_h=st.integers(1, 6), grid_w=st.integers(1, 6),
       ratio=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_swapped_cell_count_follows_ratio(pairs, patch, grid_h, grid_w, ratio, seed):
    swap = PatchSwap(patch, swap_prob=1.0, swap_ratio=ratio)
    cells = swap.sample_cells(pairs, grid_h * patch, grid_w * patch, generator(seed))
    assert cells.shape == (pairs, grid_h, grid_w)
    assert torch.all(cells.flatten(1).sum(1) == round(ratio * grid_h * grid_w))


@settings(max_examples=30, deadline=None)
@given(pairs=st.integers(1, 4), patch=st.integers(1, 6), height=st.integers(1, 24), width=st.integers(1, 24),
       seed=st.integers(0, 2**31))
def test_a_sequence_swaps_as_its_stack(pairs, patch, height, width, seed):
    """Per-sample maps (a sequence, swapped pair by pair on the CPU) come out as their stack would."""
    swap = PatchSwap(patch, swap_prob=1.0, swap_ratio=0.5)
    mask = swap.cells_to_pixels(swap.sample_cells(pairs, height, width, generator(seed)), height, width)
    maps = [torch.randint(0, 255, (1, height, width)) for _ in range(2 * pairs)]
    before = [label_map.clone() for label_map in maps]
    assert torch.equal(swap_pairs(maps, mask), swap_pairs(torch.stack(maps), mask))
    assert all(torch.equal(a, b) for a, b in zip(maps, before))


DTYPES = [torch.float32, torch.float16, torch.uint8, torch.bool, torch.int64]


@settings(max_examples=80, deadline=None)
@given(pairs=st.integers(1, 3), patch=st.integers(1, 8), height=st.integers(1, 20), width=st.integers(1, 20),
       dtype=st.sampled_from(DTYPES), offset=st.integers(0, 3), as_sequence=st.booleans(), seed=st.integers(0, 2**31))
def test_swap_moves_words_bit_for_bit_as_the_pixel_swap(pairs, patch, height, width, dtype, offset, as_sequence,
                                                        seed):
    """``PatchSwap.swap`` (pixels grouped into words where it can) equals the plain pixel swap, bit for bit."""
    swap = PatchSwap(patch, swap_prob=1.0, swap_ratio=0.5)
    cells = swap.sample_cells(pairs, height, width, generator(seed))
    # random bits, NaN payloads included; a storage offset and a wider row make some batches unviewable as words
    bits = torch.randint(0, 256, (2 * pairs * 2 * height * (width + offset) * 8 + offset * 8,),
                         dtype=torch.uint8, generator=generator(seed))
    flat = (bits % 2).bool() if dtype == torch.bool else bits.view(dtype)
    batch = flat[offset:offset + 2 * pairs * 2 * height * (width + offset)].view(2 * pairs, 2, height, width + offset)
    batch = batch[..., offset:]
    items = list(batch) if as_sequence else batch
    expected = swap_pairs(items, swap.cells_to_pixels(cells, height, width))
    out = swap.swap(items, cells)
    assert out.dtype == dtype and out.shape == expected.shape
    assert torch.equal(out.view(torch.uint8), expected.view(torch.uint8))  # bits, so NaN == NaN


@settings(max_examples=40, deadline=None)
@given(pairs=st.integers(1, 3), patch=st.sampled_from([2, 4, 6, 8]), height=st.integers(1, 20),
       width=st.sampled_from([8, 16, 24]), group=st.sampled_from([1, 2]), seed=st.integers(0, 2**31))
def test_grouped_pixel_mask_is_every_group_th_column(pairs, patch, height, width, group, seed):
    swap = PatchSwap(patch, swap_prob=1.0, swap_ratio=0.5)
    cells = swap.sample_cells(pairs, height, width, generator(seed))
    full = swap.cells_to_pixels(cells, height, width)
    grouped = swap.cells_to_pixels(cells, height, width, group)
    assert torch.equal(grouped, full[..., ::group])
    assert torch.equal(grouped.repeat_interleave(group, -1), full)  # a group never straddles a cell border


@settings(max_examples=40, deadline=None)
@given(pairs=st.integers(1, 3), patch=st.integers(1, 8), height=st.integers(1, 30), width=st.integers(1, 30),
       seed=st.integers(0, 2**31))
def test_cell_grid_covers_the_image_as_the_pixel_mask_does(pairs, patch, height, width, seed):
    swap = PatchSwap(patch, 1.0, (0.0, 1.0))
    cells = swap.sample_cells(pairs, height, width, torch.Generator().manual_seed(seed))
    grid, row_edges, col_edges = swap.cell_grid(cells, height, width)
    assert row_edges[0] == col_edges[0] == 0 and row_edges[-1] == height and col_edges[-1] == width
    assert grid.shape == (pairs, len(row_edges) - 1, len(col_edges) - 1)
    rows, cols = torch.tensor(row_edges).diff(), torch.tensor(col_edges).diff()
    assert torch.all(rows > 0) and torch.all(cols > 0)
    pixels = grid.repeat_interleave(rows, dim=1).repeat_interleave(cols, dim=2)
    assert torch.equal(pixels, swap.cells_to_pixels(cells, height, width))


def test_grouping_must_divide_patch_and_width():
    swap = PatchSwap(6, swap_prob=1.0, swap_ratio=0.5)
    cells = swap.sample_cells(1, 12, 12, generator())
    with pytest.raises(ValueError, match='group 4'):
        swap.cells_to_pixels(cells, 12, 12, group=4)


def test_a_sequence_of_mixed_shapes_is_rejected():
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match='one shape'):
        swap_pairs([torch.zeros(1, 4, 4), torch.zeros(4, 4)], mask)  # where() would broadcast it silently
    with pytest.raises(ValueError, match='one shape'):
        PatchSwap(2).swap([torch.zeros(1, 4, 4), torch.zeros(1, 4, 6)], mask[:, :2, :2])


def test_zero_probability_is_identity():
    swap = PatchSwap(4, swap_prob=0.0, swap_ratio=1.0)
    images = torch.rand(6, 3, 16, 16)
    mask = swap.cells_to_pixels(swap.sample_cells(3, 16, 16, generator()), 16, 16)
    assert not mask.any()
    assert torch.equal(swap_pairs(images, mask), images)


def test_full_swap_exchanges_the_pair():
    swap = PatchSwap(4, swap_prob=1.0, swap_ratio=1.0)
    images = torch.rand(4, 3, 16, 12)
    mask = swap.cells_to_pixels(swap.sample_cells(2, 16, 12, generator()), 16, 12)
    assert torch.equal(swap_pairs(images, mask), images[[1, 0, 3, 2]])


@settings(max_examples=40, deadline=None)
@given(patch=st.integers(1, 8), height=st.integers(8, 40), width=st.integers(8, 40), data=st.data())
def test_cells_stay_inside_both_valid_areas(patch, height, width, data):
    valid = [(data.draw(st.integers(0, height)), data.draw(st.integers(0, width))) for _ in range(4)]
    shared = pair_valid_hw(valid)
    swap = PatchSwap(patch, swap_prob=1.0, swap_ratio=1.0)
    cells = swap.sample_cells(2, height, width, generator(), torch.tensor(shared))
    mask = swap.cells_to_pixels(cells, height, width)
    for pair, (valid_h, valid_w) in enumerate(shared):
        assert not mask[pair, valid_h:].any() and not mask[pair, :, valid_w:].any()
        # with ratio 1 every whole cell inside the shared area is swapped
        assert mask[pair, :valid_h // patch * patch, :valid_w // patch * patch].all()


def test_image_smaller_than_a_patch_is_never_swapped():
    swap = PatchSwap(32, swap_prob=1.0, swap_ratio=1.0)
    cells = swap.sample_cells(2, 20, 24, generator())
    assert cells.shape == (2, 0, 0)
    assert not swap.cells_to_pixels(cells, 20, 24).any()


def test_same_generator_seed_same_cells_other_seed_other_cells():
    swap = PatchSwap(4, swap_prob=1.0, swap_ratio=0.5)
    first = swap.sample_cells(8, 64, 64, generator(1))
    assert torch.equal(first, swap.sample_cells(8, 64, 64, generator(1)))
    assert not torch.equal(first, swap.sample_cells(8, 64, 64, generator(2)))


def test_ratio_range_is_sampled_per_pair():
    swap = PatchSwap(1, swap_prob=1.0, swap_ratio=(0.1, 0.9))
    counts = swap.sample_cells(64, 10, 10, generator()).flatten(1).sum(1)
    assert counts.min() >= 10 and counts.max() <= 90 and len(counts.unique()) > 5


@pytest.mark.parametrize('kwargs, key', [
    (dict(patch_size=0), 'patch_size'), (dict(patch_size=2.5), 'patch_size'),
    (dict(patch_size=4, swap_prob=1.5), 'swap_prob'), (dict(patch_size=4, swap_ratio=-0.1), 'swap_ratio'),
    (dict(patch_size=4, swap_ratio=(0.8, 0.2)), 'swap_ratio')])
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        PatchSwap(**kwargs)


def test_odd_batch_is_rejected():
    with pytest.raises(ValueError, match='even'):
        pair_valid_hw([(4, 4)] * 3)
    with pytest.raises(ValueError, match='items'):
        swap_pairs(torch.zeros(3, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool))


def test_a_share_of_the_valid_cells_rounds_to_the_nearest_count():
    """The per-pair count path (a valid area or a ratio range): 0.5 of 3 cells is 2 (1.5 rounds
    half to even), 0.5 of 5 is 2, 0.7 of 3 is 2 (2.1), where flooring would give 1, 2 and 2."""
    for ratio, valid_w, expected in ((0.5, 3, 2), (0.5, 5, 2), (0.7, 3, 2), (0.9, 5, 4)):
        swap = PatchSwap(1, swap_prob=1.0, swap_ratio=ratio)
        cells = swap.sample_cells(1, 1, 6, generator(), valid_hw=torch.tensor([[1, valid_w]]))
        assert int(cells.sum()) == expected
        ranged = PatchSwap(1, swap_prob=1.0, swap_ratio=(ratio, ratio + 1e-9))
        assert int(ranged.sample_cells(1, 1, valid_w, generator()).sum()) == expected


def test_pairs_share_the_smaller_height_and_width_of_their_two_images():
    assert pair_valid_hw([(8, 16), (4, 12), (5, 3), (7, 9)]) == ((4, 12), (5, 3))
    with pytest.raises(ValueError, match='even number'):
        pair_valid_hw([(8, 16)])
