import numpy as np
import pytest
import torch

from ipswap_mm.models.seg import BatchAugSegDataPreProcessor, SegPatchSwap
from tests.models.seg.test_seg_patch_swap import seg_batch


def test_padding_the_pipeline_added_is_never_swapped():
    """``pascal_voc12_aug.py`` pads every crop in the pipeline (``Pad``), which reports the
    padded size as ``img_shape``: the preprocessor finds the padding in the label map."""
    from mmcv.transforms import Pad
    from mmseg.datasets.transforms import PackSegInputs
    rng = np.random.default_rng(0)
    samples, images = [], []
    for height, width in [(32, 32), (20, 12)]:  # the second image: 12 rows, 20 columns of padding
        labels = rng.integers(1, 5, (height, width)).astype(np.uint8)
        labels[-1, :3] = 255  # ignored pixels inside the image stay image
        results = dict(img=rng.integers(0, 255, (height, width, 3)).astype(np.uint8), gt_seg_map=labels,
                       seg_fields=['gt_seg_map'], img_shape=(height, width), ori_shape=(height, width))
        packed = PackSegInputs()(Pad(size=(32, 32), pad_val=dict(img=0, seg=255))(results))
        assert packed['data_samples'].img_shape == (32, 32)  # Pad's: the padded size
        images.append(packed['inputs'].float())
        samples.append(packed['data_samples'])
    original = [sample.gt_sem_seg.data.clone() for sample in samples]
    preprocessor = BatchAugSegDataPreProcessor(
        mean=[0, 0, 0], std=[1, 1, 1], size=(32, 32),
        batch_augments=[dict(type='SegPatchSwap', patch_size=4, swap_prob=1.0, swap_ratio=1.0)])
    out = preprocessor(dict(inputs=images, data_samples=samples), training=True)
    swapped = [sample.gt_sem_seg.data for sample in out['data_samples']]
    assert [sample.ips_valid_shape for sample in out['data_samples']] == [(32, 32), (20, 12)]
    assert torch.equal(swapped[0][:, :20, :12], original[1][:, :20, :12])  # the shared image area moved
    assert torch.equal(swapped[0][:, 20:], original[0][:, 20:]) and torch.equal(swapped[0][:, :, 12:],
                                                                                original[0][:, :, 12:])
    assert (swapped[0] != 255).sum() == (original[0] != 255).sum() - 3  # no labelled pixel became padding


def test_valid_shape_of_an_all_padding_sample_is_empty_and_unpadded_samples_are_left_alone():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ipswap_mm.models.seg.data_preprocessor import mark_pipeline_padding
    samples = []
    for rows, cols, padded in [(0, 0, True), (7, 1, True), (3, 3, False)]:
        labels = torch.full((1, 8, 6), 255, dtype=torch.uint8)
        labels[0, rows - 1 if rows else 0:rows, cols - 1 if cols else 0:cols] = 0  # the last labelled pixel
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels))
        sample.set_metainfo(dict(pad_shape=(8, 6)) if padded else {})
        samples.append(sample)
    mark_pipeline_padding(samples, 255)
    assert [sample.metainfo.get('ips_valid_shape') for sample in samples] == [(0, 0), (7, 1), None]


def test_preprocessor_builds_and_applies_batch_augments():
    preprocessor = BatchAugSegDataPreProcessor(
        mean=[0, 0, 0], std=[1, 1, 1], size=(32, 32),
        batch_augments=[dict(type='SegPatchSwap', patch_size=8, swap_prob=1.0, swap_ratio=1.0)])
    images = [torch.full((3, 32, 32), float(i)) for i in range(4)]
    _, samples = seg_batch(4, 32, 32)
    out = preprocessor(dict(inputs=images, data_samples=samples), training=True)
    assert out['inputs'][:, 0, 0, 0].tolist() == [1.0, 0.0, 3.0, 2.0]
    _, samples = seg_batch(4, 32, 32)
    out = preprocessor(dict(inputs=images, data_samples=samples), training=False)
    assert out['inputs'][:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_patch_size_must_divide_the_crop():
    with pytest.raises(ValueError, match='patch_size'):
        BatchAugSegDataPreProcessor(size=(60, 60), batch_augments=[dict(type='SegPatchSwap', patch_size=32)])
    BatchAugSegDataPreProcessor(size=(60, 60), batch_augments=[
        dict(type='SegPatchSwap', patch_size=32, allow_partial_grid=True)])


def test_without_a_fixed_size_a_batch_patch_size_does_not_divide_fails_at_its_step():
    """size_divisor=8: a 64x72 batch is no whole number of 24-pixel cells (it trained silently
    on a partial grid); with a patch size that divides it, or allow_partial_grid, it runs."""
    inputs = [torch.rand(3, 64, 72) for _ in range(2)]
    for patch_size, partial, fails in ((24, False, True), (8, False, False), (24, True, False)):
        preprocessor = BatchAugSegDataPreProcessor(size_divisor=8, batch_augments=[
            dict(type='SegPatchSwap', patch_size=patch_size, allow_partial_grid=partial)])
        _, samples = seg_batch(2, 64, 72)
        if fails:
            message = r'patch_size=24 does not divide the input size \(64, 72\) \(this batch; .*size_divisor'
            with pytest.raises(ValueError, match=message):
                preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
        else:
            out = preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
            assert out['inputs'].shape[-2:] == (64, 72)


@pytest.mark.parametrize('default_scope', ['mmdet', 'mmengine', None])
def test_batch_augments_build_whatever_the_default_scope(default_scope):
    # A process that ran an MMDetection job first has 'mmdet' as its default scope.
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope(default_scope):
        preprocessor = BatchAugSegDataPreProcessor(
            size=(32, 32), batch_augments=[dict(type='SegPatchSwap', patch_size=8)])
    assert isinstance(preprocessor.batch_augments.augments[0], SegPatchSwap)


def test_padding_is_marked_in_training_only():
    preprocessor = BatchAugSegDataPreProcessor(mean=[0, 0, 0], std=[1, 1, 1], size=(32, 32), batch_augments=[
        dict(type='SegPatchSwap', patch_size=8)])
    _, samples = seg_batch(2, 32, 32)
    for sample in samples:
        sample.set_metainfo(dict(pad_shape=(32, 32)))
    preprocessor(dict(inputs=[torch.rand(3, 32, 32) for _ in range(2)], data_samples=samples), training=False)
    assert all('ips_valid_shape' not in sample.metainfo for sample in samples)
