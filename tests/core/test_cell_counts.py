import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ipswap_mm.core.cell_counts import cell_class_counts
from ipswap_mm.core.pair_kl import pair_kl_divergence

IGNORE = 255


def random_labels(num, height, width, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (num, height, width), generator=generator)
    labels[torch.rand(labels.shape, generator=generator) < 0.2] = IGNORE
    return labels


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 24), width=st.integers(1, 24), cell_h=st.integers(1, 8), cell_w=st.integers(1, 8),
       classes=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_counts_match_a_pixel_by_pixel_count(height, width, cell_h, cell_w, classes, seed):
    labels = random_labels(2, height, width, classes, seed)
    counts = cell_class_counts(labels, (cell_h, cell_w), classes)
    expected = torch.zeros(2, cell_h * cell_w, classes)
    for n in range(2):
        for y in range(height):
            for x in range(width):
                label = int(labels[n, y, x])
                if label < classes:
                    expected[n, (y * cell_h // height) * cell_w + x * cell_w // width, label] += 1
    assert torch.equal(counts, expected)
    assert counts.sum().item() == (labels != IGNORE).sum().item()  # every labelled pixel once, ignored none


@pytest.mark.parametrize('sigmoid', [False, True])
def test_kl_on_cell_counts_equals_the_kl_on_nearest_upsampled_logits(sigmoid):
    """Weighting cells by their pixel counts is the pixel-level class mean of the cells'
    predictions: the same loss as upsampling the logits (nearest) to the label map."""
    torch.manual_seed(0)
    classes, (height, width), (cell_h, cell_w) = 4, (20, 28), (5, 7)
    labels = random_labels(4, height, width, classes, seed=1)
    logits = torch.randn(4, classes if sigmoid else classes + 1, cell_h, cell_w) * 2
    rows = torch.arange(height) * cell_h // height
    cols = torch.arange(width) * cell_w // width
    upsampled = logits[:, :, rows][:, :, :, cols]  # (N, C, H, W), each pixel its cell's logits
    at_cells = pair_kl_divergence(logits.flatten(2), cell_class_counts(labels, (cell_h, cell_w), classes), classes,
                                  use_sigmoid=sigmoid)
    at_pixels = pair_kl_divergence(upsampled.flatten(2), labels.flatten(1), classes, use_sigmoid=sigmoid)
    assert at_cells.item() > 0
    assert at_cells.item() == pytest.approx(at_pixels.item(), rel=1e-6)


def test_negative_labels_count_for_no_class():
    """SegPairLogits marks a head's ignore index inside [0, K) as -1: such pixels are no class 0."""
    counts = cell_class_counts(torch.tensor([[[-1, 0], [-7, 1]]]), (1, 1), 2)
    assert counts.tolist() == [[[1.0, 1.0]]]


def test_the_tables_kept_per_batch_geometry_hold_one_image_of_pixels():
    """The cached bin layout is one row of pixels, not a copy per image: at 16 images of
    512x512 a per-image table held 33.5 MB per cached geometry (on the GPU, for the run)."""
    from ipswap_mm.core.cell_counts import _cell_bins
    _cell_bins.cache_clear()
    labels = random_labels(16, 64, 48, 3, seed=0)
    cell_class_counts(labels, (8, 6), 3)
    first_bin, ones = _cell_bins(16, 64, 48, (8, 6), 3, labels.device)
    assert _cell_bins.cache_info().hits == 1  # the entry the count cached
    assert first_bin.numel() == 64 * 48
    assert ones.untyped_storage().nbytes() == ones.element_size()  # a broadcast scalar


def test_label_maps_of_any_integer_type_or_layout_count_the_same():
    """uint8 maps (255: ignored) cast to long before the clamp (a uint8 clamp at -1 wraps to
    255 and counts nothing); a transposed (not contiguous) map is read as it is; a list size
    is a size."""
    labels = random_labels(2, 6, 10, 3, seed=1)
    expected = cell_class_counts(labels, (3, 5), 3)
    assert expected.sum() > 0
    assert torch.equal(cell_class_counts(labels.to(torch.uint8), (3, 5), 3), expected)
    assert torch.equal(cell_class_counts(labels.int(), [3, 5], 3), expected)
    transposed = labels.transpose(1, 2).contiguous().transpose(1, 2)
    assert not transposed.is_contiguous()
    assert torch.equal(cell_class_counts(transposed, (3, 5), 3), expected)
    assert cell_class_counts(labels[:0], (3, 5), 3).shape == (0, 15, 3)
