import pytest
import torch
from torch import nn

from ipswap_mm.models.pair_logits import TrainingOutput, build_pair_logits
from tests.engine.test_distill_hook import tiny_segmentor


def test_a_segmentor_gets_the_segmentation_reader_and_its_contract():
    model = tiny_segmentor()
    reader = build_pair_logits(model)
    assert type(reader).__name__ == 'SegPairLogits'
    assert reader.num_classes == 5 and reader.use_sigmoid is False
    assert model.decode_head.conv_seg._forward_hooks
    assert 'forward' not in model.decode_head.__dict__  # a dense head is hooked, not wrapped
    reader.remove()
    assert not model.decode_head.conv_seg._forward_hooks and 'forward' not in model.decode_head.__dict__


def test_a_model_of_no_supported_family_is_named():
    with pytest.raises(TypeError, match='does not support the model type Sequential'):
        build_pair_logits(nn.Sequential(nn.Linear(2, 2)))


def test_a_forward_outside_training_is_not_kept_and_a_kept_output_is_taken_once():
    layer = nn.Conv2d(3, 3, 1)
    output = TrainingOutput(layer)
    layer.eval()
    layer(torch.rand(1, 3, 4, 4))
    with pytest.raises(RuntimeError, match='IPSDistillHook: the layer gave nothing in this training step'):
        output.take('the layer gave nothing')
    layer.train()
    out = layer(torch.rand(1, 3, 4, 4))
    assert output.take('the layer gave nothing') is out
    with pytest.raises(RuntimeError, match='gave nothing'):  # taken: cleared for the next step
        output.take('the layer gave nothing')
    output.remove()
    layer(torch.rand(1, 3, 4, 4))
    assert output.value is None  # the hook is gone
    kept = TrainingOutput()  # no module: the owner keeps values itself
    kept.keep(out)
    assert kept.take('nothing kept') is out
    kept.remove()
