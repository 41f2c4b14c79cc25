import torch

from ipswap_mm.core.device import constant, to_device


def test_a_tensor_already_there_is_returned_as_it_is():
    tensor = torch.arange(3)
    assert to_device(tensor, 'cpu') is tensor
    assert to_device(tensor, torch.device('cpu')) is tensor


def test_a_tensor_elsewhere_is_copied_there():
    moved = to_device(torch.arange(3), 'meta')
    assert moved.device.type == 'meta' and moved.shape == (3,)


def test_a_constant_is_made_once_per_values_dtype_and_device():
    edges = constant((0, 32, 64, 70), torch.long, torch.device('cpu'))
    assert edges.tolist() == [0, 32, 64, 70] and edges.dtype == torch.long
    assert constant((0, 32, 64, 70), torch.long, torch.device('cpu')) is edges  # no new copy
    assert constant((0, 32, 64, 70), torch.float64, torch.device('cpu')) is not edges
    assert constant((0, 32, 64), torch.long, torch.device('cpu')).tolist() == [0, 32, 64]
