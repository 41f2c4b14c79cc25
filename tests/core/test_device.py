import torch

from ipswap_mm.core.device import to_device


def test_a_tensor_already_there_is_returned_as_it_is():
    tensor = torch.arange(3)
    assert to_device(tensor, 'cpu') is tensor
    assert to_device(tensor, torch.device('cpu')) is tensor


def test_a_tensor_elsewhere_is_copied_there():
    moved = to_device(torch.arange(3), 'meta')
    assert moved.device.type == 'meta' and moved.shape == (3,)
