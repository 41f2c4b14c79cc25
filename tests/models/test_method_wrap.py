import torch

from ipswap_mm.models.method_wrap import unwrap_method, wrap_method


class Head(torch.nn.Module):
    def forward(self, x):
        return x + 1

    def loss(self, x):
        return self.forward(x)  # a direct call: forward hooks would not see it


def test_the_wrapper_sees_direct_calls_and_unwrapping_restores_the_class_method():
    head, seen = Head(), []

    def wrapper(x):
        seen.append(x)
        return original(x)

    original = wrap_method(head, 'forward', wrapper)
    assert head.loss(torch.tensor(1.0)) == 2 and len(seen) == 1
    assert set(head.state_dict()) == set(Head().state_dict())
    unwrap_method(head, 'forward', wrapper)
    assert 'forward' not in head.__dict__ and head.loss(torch.tensor(1.0)) == 2 and len(seen) == 1
    unwrap_method(head, 'forward', wrapper)  # a second time: nothing
    assert head(torch.tensor(1.0)) == 2
