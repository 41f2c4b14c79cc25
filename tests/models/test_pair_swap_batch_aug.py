import pytest
import torch

from ipswap_mm.models import pair_swap_batch_aug
from ipswap_mm.models.seg import SegPatchSwap
from tests.models.seg.test_seg_patch_swap import seg_batch


@pytest.mark.parametrize('options, key', [(dict(swap_prob=1.5), 'SegPatchSwap.swap_prob'),
                                          (dict(swap_ratio=(0.7, 0.3)), 'SegPatchSwap.swap_ratio'),
                                          (dict(patch_size=0), 'SegPatchSwap.patch_size')])
def test_bad_options_name_the_swap_and_the_config_key(options, key):
    with pytest.raises(ValueError, match=rf'^{key} .*\(model.data_preprocessor.batch_augments\)$'):
        SegPatchSwap(**options)


def test_a_batch_smaller_than_a_patch_warns_once(monkeypatch):
    """Nothing can be swapped then; the run goes on, but says so (once)."""
    warnings = []
    monkeypatch.setattr(pair_swap_batch_aug, 'print_log', lambda message, **kwargs: warnings.append(message))
    swap = SegPatchSwap(patch_size=32, swap_prob=1.0, swap_ratio=1.0, allow_partial_grid=True)
    for _ in range(2):
        inputs, samples = seg_batch(2, 16, 48)
        out, _ = swap(inputs, samples)
        assert torch.equal(out, inputs)
    assert len(warnings) == 1 and 'smaller than patch_size=32' in warnings[0]
    inputs, samples = seg_batch(2, 32, 32)
    assert not torch.equal(swap(inputs, samples)[0], inputs)  # a batch of one cell swaps it
