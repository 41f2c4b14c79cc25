import pytest
import torch

from ipswap_mm.models import pair_swap_batch_aug
from ipswap_mm.models.seg import SegPatchSwap
from tests.models.seg.test_seg_patch_swap import seg_batch


@pytest.mark.parametrize('options, key', [(dict(swap_prob=1.5), 'SegPatchSwap.swap_prob'),
                                          (dict(swap_ratio=(0.7, 0.3)), 'SegPatchSwap.swap_ratio'),
                                          (dict(patch_size=0), 'SegPatchSwap.patch_size'),
                                          (dict(swap_prob=None), 'SegPatchSwap.swap_prob'),
                                          (dict(swap_ratio=(0.2, None)), 'SegPatchSwap.swap_ratio'),
                                          (dict(swap_ratio='0.5'), 'SegPatchSwap.swap_ratio'),
                                          (dict(check_finite='no'), 'SegPatchSwap.check_finite'),
                                          (dict(allow_partial_grid=1), 'SegPatchSwap.allow_partial_grid')])
def test_bad_options_name_the_swap_and_the_config_key(options, key):
    with pytest.raises(ValueError, match=rf'^{key} .*\(model.data_preprocessor.batch_augments\)$'):
        SegPatchSwap(**options)


def test_a_batch_smaller_than_a_patch_warns_once(monkeypatch):
    """Nothing can be swapped then; the run goes on, but says so (once)."""
    warnings = []
    monkeypatch.setattr(pair_swap_batch_aug, 'print_log', lambda message, **kwargs: warnings.append(message))
    swap = SegPatchSwap(patch_size=32, swap_prob=1.0, swap_ratio=1.0, allow_partial_grid=True)
    swap.pair_loss_attached = True  # as IPSDistillHook.attach leaves it
    for _ in range(2):
        inputs, samples = seg_batch(2, 16, 48)
        out, _ = swap(inputs, samples)
        assert torch.equal(out, inputs)
    assert len(warnings) == 1 and '0x1 cells of patch_size=32' in warnings[0]
    inputs, samples = seg_batch(2, 32, 32)
    assert not torch.equal(swap(inputs, samples)[0], inputs)  # a batch of one cell swaps it


def test_a_swap_ratio_that_rounds_to_no_cell_warns_once(monkeypatch):
    """0.1 of the four cells of a 64x64 batch is no cell: the swap would silently never swap."""
    warnings = []
    monkeypatch.setattr(pair_swap_batch_aug, 'print_log', lambda message, **kwargs: warnings.append(message))
    swap = SegPatchSwap(patch_size=32, swap_prob=1.0, swap_ratio=0.1)
    swap.pair_loss_attached = True
    for _ in range(2):
        inputs, samples = seg_batch(2, 64, 64)
        assert torch.equal(swap(inputs, samples)[0], inputs)
    assert len(warnings) == 1 and 'swap_ratio=0.1 of them rounds to no cell' in warnings[0]
    warnings.clear()
    SegPatchSwap(patch_size=32, swap_prob=1.0, swap_ratio=0.25, allow_partial_grid=True)(*seg_batch(2, 64, 64))
    assert not any('rounds to no cell' in w for w in warnings)  # one of four cells


def test_a_swap_without_the_distill_hook_warns_once(monkeypatch):
    """A config that replaces custom_hooks drops IPSDistillHook: the swap alone trains no pair loss."""
    warnings = []
    monkeypatch.setattr(pair_swap_batch_aug, 'print_log', lambda message, **kwargs: warnings.append(message))
    swap = SegPatchSwap(patch_size=8, swap_prob=1.0)
    for _ in range(2):
        swap(*seg_batch(2, 32, 32))
    assert len(warnings) == 1 and 'no IPSDistillHook is attached' in warnings[0] and 'custom_hooks' in warnings[0]


def test_a_ratio_range_warns_only_when_its_high_end_rounds_to_no_cell(monkeypatch):
    warnings = []
    monkeypatch.setattr(pair_swap_batch_aug, 'print_log', lambda message, **kwargs: warnings.append(message))
    swap = SegPatchSwap(patch_size=16, swap_prob=1.0, swap_ratio=(0.1, 0.5))  # of 4 cells: 0 to 2
    swap.pair_loss_attached = True
    swap(*seg_batch(2, 32, 32))
    assert not warnings


def test_the_swaps_of_a_model_are_its_data_preprocessors_in_module_order():
    from torch import nn

    from ipswap_mm.models.pair_swap_batch_aug import swaps_of
    first, second = SegPatchSwap(patch_size=8), SegPatchSwap(patch_size=16)
    model = nn.Module()
    model.data_preprocessor = nn.Module()
    model.data_preprocessor.batch_augments = nn.ModuleList([nn.Identity(), first, nn.Sequential(second)])
    assert swaps_of(model) == [first, second]
    assert swaps_of(nn.Linear(2, 2)) == []  # no data preprocessor
