import torch
from torch import nn

from ipswap_mm.models.loss_forward import loss_call_samples


def test_only_a_training_loss_call_gives_its_data_samples():
    model = nn.Linear(2, 2)
    samples = ['a', 'b']
    inputs = torch.zeros(2, 2)
    model.train()
    assert loss_call_samples(model, (inputs,), dict(data_samples=samples, mode='loss')) is samples
    assert loss_call_samples(model, (inputs, samples, 'loss'), {}) is samples  # positional
    assert loss_call_samples(model, (inputs, samples), dict(mode='loss')) is samples
    assert loss_call_samples(model, (inputs,), dict(data_samples=samples, mode='predict')) is None
    assert loss_call_samples(model, (inputs,), {}) is None  # mode defaults to 'tensor'
    model.eval()
    assert loss_call_samples(model, (inputs,), dict(data_samples=samples, mode='loss')) is None
