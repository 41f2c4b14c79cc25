import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ipswap_mm.models.seg import SegPatchSwap


def seg_batch(num, height, width, image_shapes=None):
    inputs = torch.rand(num, 3, height, width)
    samples = []
    for i in range(num):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, height, width)))
        sample.set_metainfo(dict(img_shape=(image_shapes or [(height, width)] * num)[i]))
        samples.append(sample)
    return inputs, samples


def test_images_and_labels_move_together():
    inputs, samples = seg_batch(4, 32, 32)
    labels = torch.stack([s.gt_sem_seg.data for s in samples])
    # encode the label into the image so that consistency can be read back
    inputs[:, 0] = labels[:, 0].float()
    out, out_samples = SegPatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=0.5)(inputs.clone(), samples)
    out_labels = torch.stack([s.gt_sem_seg.data for s in out_samples])
    assert torch.equal(out[:, 0], out_labels[:, 0].float())
    assert not torch.equal(out_labels, labels)
    assert [s.ips_pair_index for s in out_samples] == [0, 0, 1, 1]


def test_cells_are_drawn_on_the_host_inside_each_pairs_shared_area():
    """Two augmentations with the same seed draw the same cells, iteration after iteration, as
    CPU tensors (the batch's device is not asked), and only where both images of a pair are."""
    MessageHub.get_instance('test_cells_drawn_on_the_host')  # current, with no runner's iteration
    _, samples = seg_batch(6, 32, 48, image_shapes=[(32, 48), (24, 40)] * 3)
    first = SegPatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=(0.2, 0.8))
    second = SegPatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=(0.2, 0.8))
    draws = []
    for _ in range(3):  # consecutive iterations (call counts, outside a runner)
        cells = second.draw_cells(samples, 32, 48)
        assert cells.device.type == 'cpu' and torch.equal(cells, first.draw_cells(samples, 32, 48))
        assert not cells[:, 3:].any() and not cells[:, :, 5:].any()  # inside the pairs' shared 24 x 40
        draws.append(cells)
    assert not torch.equal(draws[0], draws[1])  # a new draw every iteration


def test_padding_is_never_swapped():
    inputs, samples = seg_batch(2, 32, 32, image_shapes=[(32, 32), (16, 24)])
    out, _ = SegPatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=1.0)(inputs, samples)
    assert torch.equal(out[:, :, 16:], inputs[:, :, 16:]) and torch.equal(out[:, :, :, 24:], inputs[:, :, :, 24:])
    assert torch.equal(out[0, :, :16, :24], inputs[1, :, :16, :24])


def test_label_map_of_another_size_names_the_key():
    inputs, samples = seg_batch(2, 16, 16)
    samples[1].gt_sem_seg = PixelData(data=torch.zeros(1, 16, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r'gt_sem_seg is \[\(16, 8\), \(16, 16\)\] but the images are \(16, 16\)'):
        SegPatchSwap(patch_size=8, swap_prob=1.0)(inputs, samples)


def test_batch_that_swaps_no_cell_comes_back_as_it_was_after_the_checks():
    inputs, samples = seg_batch(4, 16, 16)
    labels = [sample.gt_sem_seg.data for sample in samples]
    out, out_samples = SegPatchSwap(patch_size=8, swap_prob=0.0)(inputs, samples)
    assert out is inputs and all(s.gt_sem_seg.data is label for s, label in zip(out_samples, labels))
    assert [s.ips_pair_index for s in out_samples] == [0, 0, 1, 1]
    samples[3].gt_sem_seg = PixelData(data=torch.zeros(1, 8, 16, dtype=torch.long))
    with pytest.raises(ValueError, match='gt_sem_seg is'):  # checked whether or not a cell moves
        SegPatchSwap(patch_size=8, swap_prob=0.0)(inputs, samples)


def test_odd_batch_names_the_batch_size():
    inputs, samples = seg_batch(3, 16, 16)
    with pytest.raises(ValueError, match='batch_size'):
        SegPatchSwap(patch_size=8)(inputs, samples)


def test_nan_image_raises_naming_the_file():
    inputs, samples = seg_batch(4, 16, 16)
    for index, sample in enumerate(samples):
        sample.set_metainfo(dict(img_path=f'data/JPEGImages/{index:04d}.jpg'))
    inputs[2, 1, 3, 5] = float('nan')
    with pytest.raises(ValueError, match=r'0002\.jpg \(batch index 2\).*dataset or data pipeline') as error:
        SegPatchSwap(patch_size=8)(inputs, samples)
    assert '0000.jpg' not in str(error.value) and '0003.jpg' not in str(error.value)
    inputs[2, 1, 3, 5] = float('inf')  # the check can be switched off
    SegPatchSwap(patch_size=8, check_finite=False)(inputs, samples)


def test_huge_finite_values_whose_sum_overflows_are_not_called_bad():
    inputs, samples = seg_batch(2, 16, 16)
    inputs[:] = 3e38  # finite, but their float32 sum is inf
    out, _ = SegPatchSwap(patch_size=8, swap_prob=1.0)(inputs, samples)
    assert torch.isfinite(out).all()


def test_opposite_infinities_are_caught():
    inputs, samples = seg_batch(2, 16, 16)
    inputs[0, 0, 0, 0], inputs[1, 0, 0, 0] = float('inf'), float('-inf')  # their sum is NaN, not inf
    with pytest.raises(ValueError, match=r'2 of 2 images'):
        SegPatchSwap(patch_size=8)(inputs, samples)


@pytest.mark.parametrize('edge_width, ignore_index', [(1, 255), (4, 255), (3, 0)])
def test_edge_maps_are_those_of_the_swapped_labels(edge_width, ignore_index):
    """PIDNet's GenerateEdge edges, drawn again on the swapped labels inside each image; the
    padding keeps its value (image 1 is 24 rows high in a 32-row batch) and makes no edge,
    whatever GenerateEdge's ignore_index."""
    from mmseg.datasets.transforms import GenerateEdge
    inputs, samples = seg_batch(4, 32, 32, image_shapes=[(32, 32), (24, 32), (32, 32), (32, 32)])
    for index, sample in enumerate(samples):
        sample.gt_sem_seg.data = torch.full((1, 32, 32), index % 3)  # one class per image: no edge inside it
        sample.gt_sem_seg.data[:, :, 16:] = 4  # and a class edge at column 16
        if index == 1:
            sample.gt_sem_seg.data[:, 24:] = 255  # padding
        rows = 24 if index == 1 else 32
        edges = GenerateEdge(edge_width, ignore_index)(dict(img_shape=(rows, 32),
                                                            gt_seg_map=sample.gt_sem_seg.data[0, :rows].numpy()))
        sample.gt_edge_map = PixelData(data=torch.full((1, 32, 32), 255))
        sample.gt_edge_map.data[0, :rows] = torch.from_numpy(edges['gt_edge_map'])
    swap = SegPatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=0.5, edge_width=edge_width,
                        edge_ignore_index=ignore_index)
    _, out_samples = swap(inputs, samples)
    for index, sample in enumerate(out_samples):
        rows = 24 if index == 1 else 32
        labels = sample.gt_sem_seg.data[0, :rows].numpy()
        expected = GenerateEdge(edge_width, ignore_index)(dict(img_shape=(rows, 32), gt_seg_map=labels))['gt_edge_map']
        edges = sample.gt_edge_map.data[0]
        assert edges.dtype == torch.long and np.array_equal(edges[:rows].numpy(), expected[:rows])
        if index == 1:
            assert (edges[24:] == 255).all()
    # the seams made edges the unswapped maps did not have
    assert sum(int(s.gt_edge_map.data[0, :, :16].sum()) for s in out_samples[2:]) > 0


def test_edge_maps_without_edge_width_name_the_key():
    inputs, samples = seg_batch(2, 16, 16)
    for sample in samples:
        sample.gt_edge_map = PixelData(data=torch.zeros(1, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match='edge_width'):
        SegPatchSwap(patch_size=8, swap_prob=1.0)(inputs, samples)


def test_one_smaller_pair_keeps_its_cells_inside_while_the_others_use_the_whole_batch():
    """A batch mixing sizes (the usual detection batch): only the pair with a smaller image is
    limited; no cell is drawn in its padding."""
    _, samples = seg_batch(4, 32, 32, image_shapes=[(16, 32), (32, 32), (32, 32), (32, 32)])
    swap = SegPatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=1.0)
    cells = swap.draw_cells(samples, 32, 32)
    assert not cells[0, 2:].any() and cells[0, :2].all() and cells[1].all()


@pytest.mark.parametrize('holder', [0, 1])
def test_a_map_only_some_samples_hold_is_named(holder):
    """A depth map in one sample of a pair and not the other: deciding on the first sample
    left the second's map unswapped behind its pixels (or failed on a missing attribute)."""
    inputs, samples = seg_batch(2, 16, 16)
    samples[holder].gt_depth_map = PixelData(data=torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match=r"1 of 2 data samples of the batch hold 'gt_depth_map'"):
        SegPatchSwap(patch_size=8, swap_prob=1.0)(inputs, samples)
