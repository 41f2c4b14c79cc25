import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ipswap_mm.core.instance_swap import (
    _row_counts,
    box_pixel_ranges,
    keep_visible_objects,
    owner_index,
    pair_regions,
    regroup_objects,
    visible_box_parts,
    visible_mask_parts,
)

# box coordinates on a quarter-pixel grid (exact in float32), reaching outside the image
coordinate = st.integers(-24, 140).map(lambda q: q / 4)


def box_pixels(box, height, width) -> np.ndarray:
    """Reference: ``(H, W)`` bool, the pixels a box covers with a positive area."""
    x1, y1, x2, y2 = box
    cols = np.arange(width)
    rows = np.arange(height)
    in_x = (np.minimum(x2, cols + 1) - np.maximum(x1, cols)) > 0
    in_y = (np.minimum(y2, rows + 1) - np.maximum(y1, rows)) > 0
    return in_y[:, None] & in_x[None, :]


def tight_box(pixels: np.ndarray):
    """``[c1, r1, c2, r2]`` (end exclusive) of the True pixels of an ``(H, W)`` array."""
    rows, cols = np.nonzero(pixels)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


@st.composite
def boxes_and_regions(draw):
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    num_regions = draw(st.integers(1, 3))
    boxes = draw(st.lists(st.tuples(coordinate, coordinate, coordinate, coordinate), min_size=0, max_size=6))
    boxes = [(x1, y1, x2, y2) for x1, y1, x2, y2 in boxes]
    index = [draw(st.integers(0, num_regions - 1)) for _ in boxes]
    seed = draw(st.integers(0, 2**31))
    density = draw(st.floats(0, 1))
    regions = torch.rand(num_regions, height, width, generator=torch.Generator().manual_seed(seed)) < density
    return (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(index, dtype=torch.long),
            regions)


@settings(max_examples=200, deadline=None)
@given(case=boxes_and_regions())
def test_recomputed_box_covers_exactly_the_visible_part(case):
    boxes, index, regions = case
    height, width = regions.shape[-2:]
    new_boxes, visible, full = visible_box_parts(boxes, index, regions)
    assert new_boxes.shape == boxes.shape and visible.shape == full.shape == (len(boxes),)
    for i, box in enumerate(boxes.tolist()):
        pixels = box_pixels(box, height, width)
        seen = pixels & regions[index[i]].numpy()
        assert full[i] == pixels.sum() and visible[i] == seen.sum()
        new = new_boxes[i].tolist()
        if not seen.any() or seen.sum() == pixels.sum():
            # nothing visible (dropped or kept as it was) or untouched: the exact input box
            assert new == box
            continue
        c1, r1, c2, r2 = tight_box(seen)
        # inside the original box and inside the hull of the visible pixels ...
        assert box[0] <= new[0] and box[1] <= new[1] and new[2] <= box[2] and new[3] <= box[3]
        assert c1 <= new[0] and r1 <= new[1] and new[2] <= c2 and new[3] <= r2
        assert new == [max(box[0], c1), max(box[1], r1), min(box[2], c2), min(box[3], r2)]
        # ... and still covering every visible pixel of the object
        assert np.array_equal(box_pixels(new, height, width) & seen, seen)


@st.composite
def masks_and_regions(draw):
    height, width = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    num, num_regions = draw(st.integers(0, 5)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    masks = torch.rand(num, height, width, generator=generator) < draw(st.floats(0, 1))
    regions = torch.rand(num_regions, height, width, generator=generator) < draw(st.floats(0, 1))
    index = torch.randint(0, num_regions, (num,), generator=generator)
    return masks, index, regions


@settings(max_examples=150, deadline=None)
@given(case=masks_and_regions())
def test_recomputed_mask_box_is_the_tight_box_of_the_visible_mask(case):
    masks, index, regions = case
    new_masks, new_boxes, visible, full = visible_mask_parts(masks, index, regions)
    assert torch.equal(new_masks, masks & regions[index])
    assert torch.equal(full, masks.flatten(1).sum(1).float())
    assert torch.equal(visible, new_masks.flatten(1).sum(1).float())
    for i in range(len(masks)):
        seen = new_masks[i].numpy()
        expected = tight_box(seen) if seen.any() else [0, 0, 0, 0]
        assert new_boxes[i].tolist() == expected
        if seen.any():  # never beyond the visible pixels of the object
            assert np.array_equal(box_pixels(new_boxes[i].tolist(), *seen.shape) & seen, seen)


@st.composite
def cell_edges(draw, size):
    """Increasing pixel edges from 0 to ``size``: cells of random sizes."""
    cuts = draw(st.sets(st.integers(1, size - 1), max_size=size - 1)) if size > 1 else set()
    return [0, *sorted(cuts), size]


@settings(max_examples=150, deadline=None)
@given(case=boxes_and_regions(), data=st.data())
def test_regions_on_cells_give_what_the_same_regions_in_pixels_give(case, data):
    boxes, index, pixel_regions = case
    height, width = pixel_regions.shape[-2:]
    row_edges, col_edges = data.draw(cell_edges(height)), data.draw(cell_edges(width))
    rows, cols = torch.tensor(row_edges).diff(), torch.tensor(col_edges).diff()
    # random regions on the cells, and the same regions pixel by pixel
    grid = pixel_regions[:, torch.tensor(row_edges[:-1])][:, :, torch.tensor(col_edges[:-1])]
    pixels = grid.repeat_interleave(rows, dim=1).repeat_interleave(cols, dim=2)
    destinations = torch.stack([index, index.flip(0)])
    on_cells = visible_box_parts(boxes, destinations, grid, row_edges, col_edges)
    for cell_result, pixel_result in zip(on_cells, visible_box_parts(boxes, destinations, pixels)):
        assert torch.equal(cell_result, pixel_result)


@settings(max_examples=60, deadline=None)
@given(box_case=boxes_and_regions(), mask_case=masks_and_regions(), seed=st.integers(0, 2**31))
def test_several_destinations_at_once_equal_one_call_each(box_case, mask_case, seed):
    generator = torch.Generator().manual_seed(seed)
    for (objects, index, regions), parts in ((box_case, visible_box_parts), (mask_case, visible_mask_parts)):
        other = torch.randint(0, len(regions), index.shape, generator=generator)
        together = parts(objects, torch.stack([index, other]), regions)
        for row, destination in enumerate((index, other)):
            alone = parts(objects, destination, regions)
            for joint, single in zip(together[:-1], alone[:-1]):  # new boxes (masks), visible areas
                assert torch.equal(joint[row], single)
            assert torch.equal(together[-1], alone[-1])  # full areas


def test_keep_rule_per_destination():
    visible, full = torch.tensor([[50.0, 10.0], [50.0, 10.0]]), torch.tensor([50.0, 100.0])
    moved = torch.tensor([[False], [True]])
    keep = keep_visible_objects(visible, full, 16.0, 0.25, moved=moved)
    # whole where it stays and where it was carried: kept; too small a part: dropped in both
    assert keep.tolist() == [[True, False], [True, False]]
    # an object smaller than min_visible_area: kept where it lies whole, wherever that is
    keep = keep_visible_objects(torch.tensor([[9.0], [0.0]]), torch.tensor([9.0]), 16.0, 0.25, moved=moved)
    assert keep.tolist() == [[True], [False]]
    keep = keep_visible_objects(torch.tensor([[0.0], [9.0]]), torch.tensor([9.0]), 16.0, 0.25, moved=moved)
    assert keep.tolist() == [[False], [True]]
    # a zero-area box: kept where it was, not copied into the partner
    keep = keep_visible_objects(torch.tensor([[0.0], [0.0]]), torch.tensor([0.0]), 16.0, 0.25, moved=moved)
    assert keep.tolist() == [[True], [False]]


@settings(max_examples=200, deadline=None)
@given(visible=st.integers(0, 400), lost=st.integers(0, 400), min_area=st.floats(0, 64),
       min_ratio=st.floats(0, 1))
@example(visible=9, lost=0, min_area=16.0, min_ratio=0.25)  # carried whole, under min_visible_area: kept
def test_keep_rule(visible, lost, min_area, min_ratio):
    full = visible + lost
    args = (torch.tensor([float(visible)]), torch.tensor([float(full)]), min_area, min_ratio)
    large_enough = visible >= max(min_area, 1.0) and visible / max(full, 1) >= min_ratio
    # carried over whole (a part of at least one pixel): kept whatever its size
    assert bool(keep_visible_objects(*args, moved=True)) == ((lost == 0 and full > 0) or large_enough)
    # staying: untouched objects are kept whatever their size
    assert bool(keep_visible_objects(*args, moved=False)) == (lost == 0 or large_enough)


def test_zero_area_and_outside_boxes_cover_no_pixel_and_stay_as_they_were():
    boxes = torch.tensor([[3.5, 2.0, 3.5, 6.0],  # zero width, not on a pixel edge
                          [4.0, 4.0, 9.0, 4.0],  # zero height
                          [6.0, 6.0, 2.0, 8.0],  # inverted
                          [-9.0, -9.0, -1.0, -1.0],  # above-left of the image
                          [20.0, 2.0, 30.0, 5.0],  # right of the image
                          [-3.0, -2.0, 4.0, 3.0]])  # partly outside: clipped area only
    assert box_pixel_ranges(boxes, 10, 12).tolist()[-1] == [0, 0, 4, 3]
    stay = torch.zeros(1, 10, 12, dtype=torch.bool)  # every pixel swapped away
    move = ~stay
    stay_boxes, stay_area, full = visible_box_parts(boxes, torch.zeros(6, dtype=torch.long), stay)
    move_boxes, move_area, _ = visible_box_parts(boxes, torch.zeros(6, dtype=torch.long), move)
    assert full.tolist() == [0, 0, 0, 0, 0, 12] and stay_area.tolist() == [0] * 6
    assert move_area.tolist() == [0, 0, 0, 0, 0, 12]
    assert torch.equal(stay_boxes, boxes) and torch.equal(move_boxes, boxes)
    kept = keep_visible_objects(stay_area, full, 1.0, 0.0, moved=False)
    carried = keep_visible_objects(move_area, full, 1.0, 0.0, moved=True)
    assert kept.tolist() == [True] * 5 + [False]
    assert carried.tolist() == [False] * 5 + [True]


def test_untouched_box_reaching_outside_keeps_its_coordinates():
    boxes = torch.tensor([[-3.25, -2.5, 4.75, 3.0]])
    regions = torch.zeros(1, 10, 12, dtype=torch.bool)
    regions[0, :, :6] = True  # the box's pixels all stay
    new, visible, full = visible_box_parts(boxes, torch.zeros(1, dtype=torch.long), regions)
    assert torch.equal(new, boxes) and visible.item() == full.item() == 15
    regions[0, :, 2:] = False  # now it loses columns 2..4
    new, visible, full = visible_box_parts(boxes, torch.zeros(1, dtype=torch.long), regions)
    assert new.tolist() == [[0.0, 0.0, 2.0, 3.0]] and visible.item() == 6 and full.item() == 15


def test_pair_regions_split_each_pair_mask():
    pixel_mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    pixel_mask[0, :2] = True
    regions = pair_regions(pixel_mask)
    assert regions.shape == (2, 4, 4, 4)
    stay, move = regions
    assert torch.equal(move[0], pixel_mask[0]) and torch.equal(move[1], pixel_mask[0])
    assert torch.equal(stay[2], ~pixel_mask[1]) and torch.equal(stay[0] ^ move[0], torch.ones(4, 4, dtype=torch.bool))


def test_owner_index_lists_the_image_of_every_object():
    assert owner_index([2, 0, 3, 1], 'cpu').tolist() == [0, 0, 2, 2, 2, 3]
    assert owner_index([0, 0], 'cpu').tolist() == []


@pytest.mark.parametrize('width', [7, 40, 255, 300, 1024, 257])
def test_row_counts_are_the_true_pixels_of_every_row(width):
    """Runs of pixels summed in uint8 first (300: runs of 150; 1024: of 128; 257, a prime: none)."""
    torch.manual_seed(width)
    masks = torch.rand(2, 3, 5, width) < torch.rand(2, 3, 5, 1)  # rows from empty to full
    masks[0, 0, 0] = True  # a full row: more ones than a uint8 holds when the width is above 255
    counts = _row_counts(masks)
    assert counts.dtype == torch.int16 and torch.equal(counts.long(), masks.sum(-1))


def test_regrouped_images_show_their_kept_objects_then_the_partners_carried_ones():
    # images 0 and 1 are partners (2 and 1 objects), images 2 and 3 (0 and 2)
    keep = np.array([[True, False, True, True, False],    # part left in place
                     [False, True, True, False, True]])   # part carried to the partner
    picks, counts = regroup_objects(keep, [2, 1, 0, 2])
    assert counts == [1 + 1, 1 + 1, 0 + 1, 1 + 0]
    # image 0: its object 0, then image 1's object 2 carried (candidate 5 + 2); image 1: its
    # object 2, then image 0's object 1 carried; image 2: image 3's object 4; image 3: its object 3
    assert picks.tolist() == [0, 5 + 2, 2, 5 + 1, 5 + 4, 3]
    assert picks.dtype == np.int64 and regroup_objects(np.zeros((2, 0), bool), [0, 0])[0].tolist() == []
