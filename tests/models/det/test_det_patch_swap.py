import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from ipswap_mm.models.det import DetPatchSwap

KINDS = ('boxes', 'bitmap', 'polygon')


def rectangle_masks(boxes, height, width) -> np.ndarray:
    masks = np.zeros((len(boxes), height, width), np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes):
        mask[int(y1):int(y2), int(x1):int(x2)] = 1
    return masks


def instances(boxes, labels, height, width, kind='boxes', box_type=torch.Tensor) -> InstanceData:
    """Objects given as integer rectangles; with masks, each mask fills its rectangle."""
    tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    inst = InstanceData(bboxes=tensor if box_type is torch.Tensor else box_type(tensor),
                        labels=torch.tensor(labels, dtype=torch.long))
    if kind == 'bitmap':
        inst.masks = BitmapMasks(rectangle_masks(boxes, height, width), height, width)
    elif kind == 'polygon':
        inst.masks = PolygonMasks([[np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float64)]
                                   for x1, y1, x2, y2 in boxes], height, width)
    return inst


def det_sample(boxes, labels, height, width, kind='boxes', ignored=((), ()), box_type=torch.Tensor,
               img_shape=None) -> DetDataSample:
    sample = DetDataSample()
    sample.set_metainfo(dict(img_shape=img_shape or (height, width), batch_input_shape=(height, width)))
    sample.gt_instances = instances(boxes, labels, height, width, kind, box_type)
    sample.ignored_instances = instances(list(ignored[0]), list(ignored[1]), height, width, kind, box_type)
    return sample


def fixed_cells(aug: DetPatchSwap, cells: torch.Tensor) -> DetPatchSwap:
    """Make ``aug`` swap exactly ``cells`` ``(P, Gh, Gw)``."""
    aug.patch_swap.sample_cells = lambda *args, **kwargs: cells
    return aug


def box_list(inst: InstanceData) -> list:
    boxes = inst.bboxes
    return (boxes.tensor if isinstance(boxes, HorizontalBoxes) else boxes).tolist()


def mask_array(inst: InstanceData) -> np.ndarray:
    return inst.masks.to_ndarray().astype(bool)


def tight(mask: np.ndarray) -> list:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('box_type', [torch.Tensor, HorizontalBoxes])
def test_full_swap_exchanges_images_and_annotations(kind, box_type):
    size = (32, 48)
    first = dict(boxes=[[0, 0, 16, 16], [5, 3, 48, 32], [30, 10, 41, 20], [40, 0, 43, 3]], labels=[3, 1, 1, 2],
                 ignored=([[1, 1, 9, 9]], [2]))  # the last object: 9 pixels, under min_visible_area
    second = dict(boxes=[[20, 4, 36, 28]], labels=[1], ignored=((), ()))
    samples = [det_sample(d['boxes'], d['labels'], *size, kind, d['ignored'], box_type) for d in (first, second)]
    before = [(s.gt_instances, s.ignored_instances) for s in samples]
    inputs = torch.rand(2, 3, *size)
    out, out_samples = DetPatchSwap(patch_size=16, swap_prob=1.0, swap_ratio=1.0)(inputs.clone(), samples)
    assert torch.equal(out, inputs[[1, 0]])
    for sample, (gt, ignored) in zip(out_samples, before[::-1]):
        for new, old in ((sample.gt_instances, gt), (sample.ignored_instances, ignored)):
            assert isinstance(new.bboxes, box_type)
            assert box_list(new) == box_list(old) and torch.equal(new.labels, old.labels)
            if kind != 'boxes':
                assert isinstance(new.masks, BitmapMasks)
                assert np.array_equal(mask_array(new), mask_array(old))
    assert [s.ips_pair_index for s in out_samples] == [0, 0]


@pytest.mark.parametrize('kind', KINDS)
def test_no_swap_leaves_everything_untouched(kind):
    samples = [det_sample([[0, 0, 16, 16], [4, 4, 30, 12]], [0, 1], 32, 32, kind, ([[2, 2, 6, 6]], [1])),
               det_sample([[8, 8, 24, 24]], [1], 32, 32, kind)]
    before = [(s.gt_instances, s.ignored_instances) for s in samples]
    inputs = torch.rand(2, 3, 32, 32)
    out, out_samples = DetPatchSwap(patch_size=8, swap_prob=0.0, swap_ratio=1.0)(inputs.clone(), samples)
    assert torch.equal(out, inputs)
    for sample, (gt, ignored) in zip(out_samples, before):
        assert sample.gt_instances is gt and sample.ignored_instances is ignored
    if kind == 'polygon':
        assert isinstance(out_samples[0].gt_instances.masks, PolygonMasks)


# Pair 0 swaps its top-left 16x16 cell only (rows 0-15, columns 0-15); pair 1 swaps nothing.
#   image 0: 0 fully inside the cell -> moves to image 1 whole
#            1 untouched -> stays exactly
#            2 half inside (32 of 64 pixels) -> stays clipped, and moves clipped
#            3 12 pixels, 4 inside -> too small on both sides (min_visible_area=16): dropped
#            4 loses 32 of 256 pixels -> stays clipped; the 12.5% that moves is dropped (ratio 0.25)
#   image 1: 10 fully inside -> moves to image 0; 11 untouched
#   ignored: 20 (image 0) moves to image 1's ignored instances
PAIR_0 = (
    dict(boxes=[[0, 0, 16, 16], [8, 20, 24, 28], [12, 0, 20, 8], [15, 2, 18, 6], [0, 14, 16, 30]],
         labels=[0, 1, 2, 3, 4], ignored=([[0, 0, 8, 8]], [20])),
    dict(boxes=[[2, 2, 10, 10], [20, 20, 30, 30]], labels=[10, 11], ignored=((), ())),
)
EXPECTED = (
    dict(labels=[1, 2, 4, 10], boxes=[[8, 20, 24, 28], [16, 0, 20, 8], [0, 16, 16, 30], [2, 2, 10, 10]],
         ignored_labels=[], ignored_boxes=[]),
    dict(labels=[11, 0, 2], boxes=[[20, 20, 30, 30], [0, 0, 16, 16], [12, 0, 16, 8]],
         ignored_labels=[20], ignored_boxes=[[0, 0, 8, 8]]),
)


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('swapping', [0, 1])
def test_objects_are_clipped_carried_or_dropped_by_the_thresholds(kind, swapping):
    """One pair swaps a cell, the other none; ``swapping=1``: the later pair swaps, picked out
    with its own cells."""
    samples = [det_sample(d['boxes'], d['labels'], 32, 32, kind, d['ignored']) for d in PAIR_0]
    untouched_pair = [det_sample([[0, 0, 16, 16]], [5], 32, 32, kind), det_sample([[4, 4, 8, 8]], [5], 32, 32, kind)]
    untouched = [s.gt_instances for s in untouched_pair]
    cells = torch.zeros(2, 2, 2, dtype=torch.bool)
    cells[swapping, 0, 0] = True
    aug = fixed_cells(DetPatchSwap(patch_size=16, min_visible_area=16, min_visible_ratio=0.25), cells)
    inputs = torch.rand(4, 3, 32, 32)
    batch = samples + untouched_pair if swapping == 0 else untouched_pair + samples
    out, out_samples = aug(inputs.clone(), batch)
    first, other = (0, slice(2, 4)) if swapping == 0 else (2, slice(0, 2))
    assert torch.equal(out[first, :, :16, :16], inputs[first + 1, :, :16, :16])
    assert torch.equal(out[first, :, 16:], inputs[first, :, 16:]) and torch.equal(out[other], inputs[other])
    for sample, expected in zip(out_samples[first:first + 2], EXPECTED):
        gt, ignored = sample.gt_instances, sample.ignored_instances
        assert gt.labels.tolist() == expected['labels'] and ignored.labels.tolist() == expected['ignored_labels']
        assert box_list(gt) == expected['boxes'] and box_list(ignored) == expected['ignored_boxes']
        if kind != 'boxes':  # a carried or clipped mask is exactly the visible part of the rectangle
            assert np.array_equal(mask_array(gt), rectangle_masks(expected['boxes'], 32, 32).astype(bool))
            assert len(ignored.masks) == len(ignored.labels)
    assert [s.gt_instances for s in out_samples[other]] == untouched


def test_degenerate_polygon_stays_as_it_was_and_never_moves():
    """An invalid polygon (mmdet's placeholder for a broken annotation) rasterises to nothing."""
    first = det_sample([[0, 0, 16, 16], [0, 0, 12, 12]], [1, 2], 32, 32, 'polygon')
    first.gt_instances.masks = PolygonMasks([[np.zeros(6)], [np.array([0, 0, 12, 0, 12, 12, 0, 12], float)]],
                                            32, 32)
    second = det_sample([[20, 20, 30, 30]], [1], 32, 32, 'polygon')
    cells = torch.zeros(1, 2, 2, dtype=torch.bool)
    cells[0, 0, 0] = True
    _, (first, second) = fixed_cells(DetPatchSwap(patch_size=16), cells)(torch.rand(2, 3, 32, 32), [first, second])
    assert first.gt_instances.labels.tolist() == [1] and box_list(first.gt_instances) == [[0, 0, 16, 16]]
    assert not mask_array(first.gt_instances).any()
    assert second.gt_instances.labels.tolist() == [1, 2]
    assert box_list(second.gt_instances) == [[20, 20, 30, 30], [0, 0, 12, 12]]


@st.composite
def random_pairs(draw):
    num_pairs = draw(st.integers(1, 2))
    height, width = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    patch = draw(st.integers(4, 12))
    seed = draw(st.integers(0, 2**31))
    return num_pairs, height, width, patch, seed, draw(st.sampled_from(('boxes', 'bitmap')))


@settings(max_examples=40, deadline=None)
@given(case=random_pairs(), ratio=st.floats(0, 1), min_area=st.integers(0, 40), min_ratio=st.floats(0, 1),
       swap_prob=st.sampled_from([0.5, 1.0]))
def test_every_object_is_its_visible_part(case, ratio, min_area, min_ratio, swap_prob):
    """Random objects, random swaps: each output object is the visible part of one input object, with
    labels aligned, its box within that part, and kept exactly when the thresholds say so (also where
    one pair of the batch swaps and the other does not)."""
    num_pairs, height, width, patch, seed, kind = case
    rng = np.random.default_rng(seed)
    samples, sources = [], {}
    for image in range(2 * num_pairs):
        count = int(rng.integers(0, 5))
        x1, y1 = rng.integers(0, width, count), rng.integers(0, height, count)
        boxes = [[x, y, int(rng.integers(x + 1, width + 1)), int(rng.integers(y + 1, height + 1))]
                 for x, y in zip(x1, y1)]
        labels = [100 * image + i for i in range(count)]
        sample = det_sample(boxes, labels, height, width, kind)
        if kind == 'bitmap':  # ragged masks inside their boxes, boxes as given
            masks = sample.gt_instances.masks.masks & (rng.random((count, height, width)) < 0.7)
            sample.gt_instances.masks = BitmapMasks(masks, height, width)
        pixels = mask_array(sample.gt_instances) if kind == 'bitmap' else rectangle_masks(boxes, height, width) > 0
        sources.update({label: (image, box, pixels[i]) for i, (label, box) in enumerate(zip(labels, boxes))})
        samples.append(sample)
    aug = DetPatchSwap(patch_size=patch, swap_prob=swap_prob, swap_ratio=ratio, min_visible_area=min_area,
                       min_visible_ratio=min_ratio)
    inputs = torch.rand(2 * num_pairs, 1, height, width)
    image_id = torch.arange(2 * num_pairs, dtype=torch.float32)[:, None, None, None].expand_as(inputs).clone()
    out, out_samples = aug(image_id, samples)
    came_from = out[:, 0].long().numpy()  # which image every output pixel shows
    seen = set()
    for image, sample in enumerate(out_samples):
        gt = sample.gt_instances
        if min_ratio > 0.5:  # at most one part of an object can hold more than half of it
            assert not seen & set(gt.labels.tolist())
        assert len(gt.labels) == len(gt.bboxes) and (kind == 'boxes' or len(gt.masks) == len(gt.labels))
        for i, label in enumerate(gt.labels.tolist()):
            source, box, full = sources[label]
            assert source in (image, image ^ 1)
            seen.add(label)
            visible = full & (came_from[image] == source)
            new_box = box_list(gt)[i]
            if kind == 'bitmap':
                assert np.array_equal(mask_array(gt)[i], visible)
            if visible.sum() == full.sum():
                assert new_box == [float(v) for v in box]  # untouched: exactly as it was
            else:
                assert visible.sum() >= max(min_area, 1) and visible.sum() / full.sum() >= min_ratio
                assert new_box == tight(visible)
    for label, (source, _, full) in sources.items():  # every object that should survive somewhere did
        for image in (source, source ^ 1):
            visible = full & (came_from[image] == source)
            large = visible.sum() >= max(min_area, 1) and visible.sum() / max(full.sum(), 1) >= min_ratio
            # not cut: in place, or carried whole (a part of at least one pixel)
            uncut = visible.sum() == full.sum() and (image == source or full.sum() > 0)
            if uncut or large:
                assert label in seen


def test_preprocessor_runs_the_swap_in_training_only_and_never_swaps_padding():
    with DefaultScope.overwrite_default_scope('mmdet'):  # as a config's default_scope does
        preprocessor = DetDataPreprocessor(
            mean=[0, 0, 0], std=[1, 1, 1], pad_size_divisor=32, pad_mask=True,
            batch_augments=[dict(type='DetPatchSwap', patch_size=16, swap_prob=1.0, swap_ratio=1.0)])
    images = [torch.full((3, 32, 48), 1.0), torch.full((3, 30, 64), 2.0)]

    def samples():
        return [det_sample([[0, 0, 20, 20]], [1], 32, 48, 'polygon', img_shape=(32, 48)),
                det_sample([[40, 0, 60, 20]], [1], 30, 64, 'polygon', img_shape=(30, 64))]

    out = preprocessor(dict(inputs=images, data_samples=samples()), training=True)
    inputs, (first, second) = out['inputs'], out['data_samples']
    assert inputs.shape == (2, 3, 32, 64)
    # only the 16-pixel cells inside both valid areas (16 x 48) are swapped
    assert (inputs[0, :, :16, :48] == 2).all() and (inputs[1, :, :16, :48] == 1).all()
    assert (inputs[0, :, 16:32, :48] == 1).all()
    assert (inputs[1, :, 16:30] == 2).all() and (inputs[1, :, :30, 48:] == 2).all()
    assert (inputs[0, :, :, 48:] == 0).all() and (inputs[1, :, 30:] == 0).all()
    assert box_list(first.gt_instances) == [[40, 0, 48, 16]]  # the part of image 1's object that moved
    # its own object lost only the 8 x 16 corner that moved: its tight box is unchanged
    assert box_list(second.gt_instances) == [[40, 0, 60, 20], [0, 0, 20, 16]]
    assert first.gt_instances.masks.masks.shape == (1, 32, 64)
    out = preprocessor(dict(inputs=images, data_samples=samples()), training=False)
    assert box_list(out['data_samples'][0].gt_instances) == [[0, 0, 20, 20]]


def test_odd_batch_names_the_batch_size():
    samples = [det_sample([[0, 0, 4, 4]], [0], 16, 16) for _ in range(3)]
    with pytest.raises(ValueError, match='batch_size'):
        DetPatchSwap(patch_size=8)(torch.rand(3, 3, 16, 16), samples)


@pytest.mark.parametrize('kwargs', [dict(min_visible_area=-1), dict(min_visible_ratio=1.5),
                                    dict(min_visible_area='16'), dict(min_visible_area=float('nan')),
                                    dict(min_visible_ratio=None)])
def test_bad_thresholds_name_the_key(kwargs):
    with pytest.raises(ValueError, match=r'min_visible.*\(model.data_preprocessor.batch_augments\)'):
        DetPatchSwap(**kwargs)


@pytest.mark.parametrize('box_type', [torch.Tensor, HorizontalBoxes])
def test_boxes_keep_their_dtype_through_a_swap(box_type):
    """float16 boxes come back float16 in the pairs that swap, as in those that do not."""
    samples = [det_sample([[0, 0, 16, 16], [20, 4, 36, 28]], [1, 2], 32, 48, box_type=box_type) for _ in range(4)]
    for sample in samples:
        boxes = sample.gt_instances.bboxes
        sample.gt_instances.bboxes = boxes.half() if box_type is torch.Tensor else box_type(boxes.tensor.half())
    cells = torch.tensor([[[1, 0, 1], [0, 1, 0]], [[0, 0, 0], [0, 0, 0]]]).bool()  # the second pair swaps nothing
    aug = fixed_cells(DetPatchSwap(patch_size=16), cells)
    _, out = aug(torch.rand(4, 3, 32, 48), samples)
    dtypes = {(b.tensor if box_type is HorizontalBoxes else b).dtype for b in (s.gt_instances.bboxes for s in out)}
    assert dtypes == {torch.float16}


def test_nan_image_raises_naming_the_file():
    samples = [det_sample([[0, 0, 8, 8]], [0], 16, 16) for _ in range(4)]
    samples[1].set_metainfo(dict(img_path='coco/train2017/000000000042.jpg'))
    inputs = torch.rand(4, 3, 16, 16)
    inputs[1, 0, 0, 0] = float('nan')
    inputs[3, 2, 5, 5] = float('-inf')  # no img_path: named by its batch index
    swap = DetPatchSwap(patch_size=8, swap_prob=0.0)  # checked even when no pair swaps
    with pytest.raises(ValueError, match=r'000000000042\.jpg \(batch index 1\), batch index 3\. The dataset'):
        swap(inputs, samples)


@pytest.mark.parametrize('kind', KINDS)
def test_image_without_annotations_receives_the_partner_objects(kind):
    # Images with no boxes pair among themselves or with anything (see the sampler); the swap must cope.
    samples = [det_sample([], [], 32, 32, kind), det_sample([[0, 0, 16, 16], [16, 16, 32, 32]], [1, 2], 32, 32, kind)]
    cells = torch.zeros(1, 2, 2, dtype=torch.bool)
    cells[0, 0, 0] = True  # the top-left 16x16 cell changes places
    out, out_samples = fixed_cells(DetPatchSwap(patch_size=16, swap_prob=1.0), cells)(torch.rand(2, 3, 32, 32),
                                                                                      samples)
    assert box_list(out_samples[0].gt_instances) == [[0.0, 0.0, 16.0, 16.0]]
    assert out_samples[0].gt_instances.labels.tolist() == [1]
    assert box_list(out_samples[1].gt_instances) == [[16.0, 16.0, 32.0, 32.0]]
    assert out_samples[1].gt_instances.labels.tolist() == [2]
    if kind != 'boxes':
        assert len(out_samples[0].gt_instances.masks) == 1 and len(out_samples[1].gt_instances.masks) == 1


@pytest.mark.parametrize('swap_prob', [0.0, 1.0])
def test_semantic_map_of_another_size_names_the_key_whether_or_not_a_pair_swaps(swap_prob):
    from mmengine.structures import PixelData
    samples = [det_sample([[0, 0, 8, 8]], [1], 16, 16) for _ in range(2)]
    for sample in samples:
        sample.gt_sem_seg = PixelData(sem_seg=torch.zeros(1, 16, 16, dtype=torch.uint8))
    samples[1].gt_sem_seg = PixelData(sem_seg=torch.zeros(1, 8, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'gt_sem_seg is .* set model.data_preprocessor.pad_seg=True'):
        DetPatchSwap(patch_size=8, swap_prob=swap_prob)(torch.rand(2, 3, 16, 16), samples)


@pytest.mark.parametrize('kind', KINDS)
def test_dropped_objects_pixels_are_ignored_in_the_semantic_map(kind):
    """Panoptic configs: the pixels a dropped object still shows (PAIR_0: object 3 on both
    sides, the part of object 4 that moves) become 255 in gt_sem_seg; everything else is the
    swapped map. Without masks the pixels are unknown and the map is only swapped."""
    from mmengine.structures import PixelData
    samples = [det_sample(d['boxes'], d['labels'], 32, 32, kind, d['ignored']) for d in PAIR_0]
    maps = [torch.randint(0, 200, (1, 32, 32), dtype=torch.uint8) for _ in samples]
    for sample, sem_seg in zip(samples, maps):
        sample.gt_sem_seg = PixelData(sem_seg=sem_seg.clone())
    cells = torch.ones(1, 2, 2, dtype=torch.bool) & torch.tensor([[True, False], [False, False]])
    aug = fixed_cells(DetPatchSwap(patch_size=16, min_visible_area=16, min_visible_ratio=0.25), cells)
    _, out_samples = aug(torch.rand(2, 3, 32, 32), samples)
    expected = [maps[0].clone(), maps[1].clone()]
    expected[0][:, :16, :16], expected[1][:, :16, :16] = maps[1][:, :16, :16], maps[0][:, :16, :16]
    if kind != 'boxes':
        expected[0][:, 2:6, 16:18] = 255  # object 3's part that stays: 8 pixels
        expected[1][:, 2:6, 15] = 255  # object 3's part that moves: 4 pixels
        expected[1][:, 14:16, 0:16] = 255  # object 4's part that moves: 32 of 256 pixels
    for sample, expected_map in zip(out_samples, expected):
        assert torch.equal(sample.gt_sem_seg.sem_seg, expected_map)


@pytest.mark.parametrize('holder', [0, 1])
def test_annotations_only_some_samples_hold_are_named(holder):
    """Masks, a semantic map or an instance field in some samples of a batch and not others:
    deciding on the first sample dropped the others' masks, left their map unswapped or failed
    on a missing attribute."""
    def batch():
        return [det_sample([[0, 0, 8, 8]], [1], 16, 16) for _ in range(2)]

    masked = batch()
    masked[holder] = det_sample([[0, 0, 8, 8]], [1], 16, 16, kind='bitmap')
    with pytest.raises(ValueError, match=r"1 of 2 gt_instances of the pairs that swap hold 'masks'"):
        DetPatchSwap(patch_size=8, swap_prob=1.0)(torch.rand(2, 3, 16, 16), masked)

    from mmengine.structures import PixelData
    mapped = batch()
    mapped[holder].gt_sem_seg = PixelData(sem_seg=torch.zeros(1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"1 of 2 data samples of the batch hold 'gt_sem_seg'"):
        DetPatchSwap(patch_size=8, swap_prob=1.0)(torch.rand(2, 3, 16, 16), mapped)

    scored = batch()
    scored[holder].gt_instances.scores = torch.ones(1)
    with pytest.raises(ValueError, match=r"1 of 2 gt_instances of the pairs that swap hold 'scores'"):
        DetPatchSwap(patch_size=8, swap_prob=1.0)(torch.rand(2, 3, 16, 16), scored)

    unignored = batch()
    del unignored[holder].ignored_instances
    with pytest.raises(ValueError, match=r"1 of 2 data samples of the batch hold 'ignored_instances'"):
        DetPatchSwap(patch_size=8, swap_prob=1.0)(torch.rand(2, 3, 16, 16), unignored)


def test_an_instance_field_that_is_no_tensor_is_named():
    samples = [det_sample([[0, 0, 8, 8]], [1], 16, 16) for _ in range(2)]
    for sample in samples:
        sample.gt_instances.names = ['one']
    with pytest.raises(TypeError, match="cannot carry the instance field 'names'"):
        DetPatchSwap(patch_size=8, swap_prob=1.0)(torch.rand(2, 3, 16, 16), samples)
