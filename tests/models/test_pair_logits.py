import pytest
from torch import nn

from ipswap_mm.models.pair_logits import build_pair_logits
from tests.engine.test_distill_hook import tiny_segmentor


def test_a_segmentor_gets_the_segmentation_reader_and_its_contract():
    model = tiny_segmentor()
    reader = build_pair_logits(model)
    assert type(reader).__name__ == 'SegPairLogits'
    assert reader.num_classes == 5 and reader.use_sigmoid is False
    assert model.decode_head.conv_seg._forward_hooks
    reader.remove()
    assert not model.decode_head.conv_seg._forward_hooks


def test_a_model_of_no_supported_family_is_named():
    with pytest.raises(TypeError, match='does not support the model type Sequential'):
        build_pair_logits(nn.Sequential(nn.Linear(2, 2)))
