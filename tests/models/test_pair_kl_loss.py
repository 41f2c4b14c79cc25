import warnings

import pytest
import torch

from ipswap_mm.core.pair_kl import pair_kl_divergence
from ipswap_mm.models.pair_kl_loss import PairKLDivLoss


def views():
    torch.manual_seed(0)
    return torch.randn(4, 3, 6), torch.randint(0, 3, (4, 6))


@pytest.mark.parametrize('weight', [1.0, 0.25])
def test_the_loss_is_the_weighted_pair_kl_at_its_temperature(weight):
    logits, labels = views()
    loss = PairKLDivLoss(temperature=2.0, loss_weight=weight)(logits, labels, 3)
    expected = pair_kl_divergence(logits, labels, 3, temperature=2.0)
    assert expected.item() > 0 and loss.item() == pytest.approx(weight * expected.item(), rel=1e-6)


def test_temperature_reaches_the_kl():
    logits, labels = views()
    assert PairKLDivLoss(temperature=2.0, loss_weight=1.0)(logits, labels, 3).item() != pytest.approx(
        PairKLDivLoss(temperature=1.0, loss_weight=1.0)(logits, labels, 3).item())


def test_teacher_rule_reaches_the_kl():
    logits, labels = views()
    loss = PairKLDivLoss(teacher='symmetric', loss_weight=1.0)(logits, labels, 3)
    expected = pair_kl_divergence(logits, labels, 3, teacher='symmetric')
    assert loss.item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(pair_kl_divergence(logits, labels, 3).item())  # 'confidence'


def test_weighting_reaches_the_kl():
    logits, labels = views()
    loss = PairKLDivLoss(weighting='classes', loss_weight=1.0)(logits, labels, 3)
    expected = pair_kl_divergence(logits, labels, 3, weighting='classes')
    assert loss.item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(pair_kl_divergence(logits, labels, 3).item())  # 'elements'


def test_use_sigmoid_that_contradicts_the_model_is_refused():
    logits, labels = views()
    with pytest.raises(ValueError, match='use_sigmoid'):
        PairKLDivLoss(use_sigmoid=True)(logits, labels, 3, model_uses_sigmoid=False)


@pytest.mark.parametrize('kwargs, key', [
    (dict(temperature=0), 'temperature'), (dict(temperature=float('nan')), 'temperature'),
    (dict(temperature=float('inf')), 'temperature'), (dict(loss_weight=-0.1), 'loss_weight'),
    (dict(loss_weight=float('nan')), 'loss_weight'), (dict(teacher='student'), 'teacher'),
    (dict(weighting='pixels'), 'weighting'), (dict(loss_name='ips_kl'), 'loss_name'), (dict(compile='yes'), 'compile'),
    (dict(temperature='2'), 'temperature'), (dict(loss_weight=None), 'loss_weight'),
    (dict(loss_weight=True), 'loss_weight'), (dict(use_sigmoid='yes'), 'use_sigmoid'),
    (dict(use_sigmoid=1), 'use_sigmoid')])
def test_bad_options_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=f'PairKLDivLoss.{key}'):
        PairKLDivLoss(**kwargs)


def test_compiled_loss_gives_the_eager_loss_and_gradient():
    """``compile=True``: the same values, softmax and sigmoid, and for a second number of
    elements (detection: another number of boxes), which compiles again."""
    torch.manual_seed(0)
    eager, compiled = PairKLDivLoss(), PairKLDivLoss(compile=True)
    assert callable(compiled.compile)  # the option does not hide nn.Module.compile
    for classes, elements, sigmoid in ((5, 12, False), (4, 7, True), (4, 9, True)):
        logits = torch.randn(4, classes, elements, requires_grad=True)
        labels = torch.randint(0, classes, (4, elements))
        results = []
        for loss in (eager, compiled):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                value = loss(logits, labels, classes, model_uses_sigmoid=sigmoid)
            # nothing in the graph that dynamo traces past (an lru_cache'd constant)
            assert not [w for w in caught if 'lru_cache' in str(w.message)]
            gradient, = torch.autograd.grad(value, logits)
            results.append((value.detach(), gradient))
        (value, gradient), (compiled_value, compiled_gradient) = results
        assert value.item() > 0 and compiled_value.dtype == torch.float32
        torch.testing.assert_close(compiled_value, value)
        torch.testing.assert_close(compiled_gradient, gradient)


def test_compile_options_reach_torch_compile(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, 'compile', lambda function, **kwargs: calls.append(kwargs) or function)
    PairKLDivLoss(compile=dict(mode='max-autotune-no-cudagraphs'))
    PairKLDivLoss(compile=True)
    assert calls == [dict(mode='max-autotune-no-cudagraphs'), {}]


def test_a_zero_weight_is_allowed_and_gives_zero():
    logits, labels = views()
    assert PairKLDivLoss(loss_weight=0)(logits, labels, 3).item() == 0.0


def test_the_default_weight_is_one_tenth():
    logits, labels = views()
    assert PairKLDivLoss().loss_weight == 0.1
    assert PairKLDivLoss()(logits, labels, 3).item() == pytest.approx(
        0.1 * pair_kl_divergence(logits, labels, 3).item())


def test_an_empty_dict_of_compile_options_compiles(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, 'compile', lambda function, **kwargs: calls.append(kwargs) or function)
    PairKLDivLoss(compile={})
    assert calls == [{}]


def test_use_sigmoid_none_follows_the_model():
    """The default: a sigmoid classifier (RetinaNet, DINO) gets the sigmoid pair KL."""
    logits, labels = views()
    loss = PairKLDivLoss(loss_weight=1.0)(logits, labels, 3, model_uses_sigmoid=True)
    sigmoid = pair_kl_divergence(logits, labels, 3, use_sigmoid=True)
    assert loss.item() == pytest.approx(sigmoid.item())
    assert sigmoid.item() != pytest.approx(pair_kl_divergence(logits, labels, 3).item())


def test_a_compiled_loss_traces_with_a_symbolic_temperature():
    """``compile=dict(dynamic=True, fullgraph=True)``: the temperature is a traced value, which
    the option check (eager only) must not read; it failed to trace when the check ran in the
    compiled function."""
    logits, labels = views()
    compiled = PairKLDivLoss(temperature=2.0, compile=dict(backend='eager', fullgraph=True, dynamic=True))
    torch.testing.assert_close(compiled(logits, labels, 3), PairKLDivLoss(temperature=2.0)(logits, labels, 3))
