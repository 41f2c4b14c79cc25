import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ipswap_mm.core.pair_kl import class_shares, class_weights, pair_kl_divergence


def reference_loss(logits, labels, num_classes, temperature, use_sigmoid=False, teacher='confidence',
                   weighting='elements'):
    """Plain-Python restatement of the documented loss, pair by pair and class by class."""
    terms, weights = [], []
    for pair in range(logits.shape[0] // 2):
        for k in range(num_classes):
            views = []
            for view in (2 * pair, 2 * pair + 1):
                members = labels[view] == k
                if not members.any():
                    break
                z = logits[view][:, members].double()
                soft = (z / temperature).sigmoid() if use_sigmoid else (z / temperature).softmax(0)
                plain = z.sigmoid() if use_sigmoid else z.softmax(0)
                # a term's weight: 1, or with 'elements' the student view's elements of the class
                size = int(members.sum()) if weighting == 'elements' else 1
                # for sigmoids also the mean of 1 - p, as sigmoid(-z): exact where 1 - p rounds
                absent = (-z / temperature).sigmoid().mean(1) if use_sigmoid else None
                views.append((soft.mean(1), plain.mean(1), size, absent))
            if len(views) < 2:
                continue
            (p_a, plain_a, size_a, absent_a), (p_b, plain_b, size_b, absent_b) = views
            if teacher == 'symmetric':  # both directions, the teacher side detached, averaged
                terms += [kl_divergence((p_a, absent_a), (p_b, absent_b)) * size_b / 2,
                          kl_divergence((p_b, absent_b), (p_a, absent_a)) * size_a / 2]
                weights += [size_b / 2, size_a / 2]
                continue
            a_teaches = plain_a[k] >= plain_b[k]
            if teacher == 'confident_correct' and int((plain_a if a_teaches else plain_b).argmax()) != k:
                continue  # a teacher whose class mean does not predict k teaches nothing
            teacher_view, student_view = ((p_a, absent_a), (p_b, absent_b))[::1 if a_teaches else -1]
            size = size_b if a_teaches else size_a
            terms.append(kl_divergence(teacher_view, student_view) * size)
            weights.append(size)
    if not terms:
        return 0.0
    return temperature**2 * torch.stack(terms).sum() / sum(weights)  # differentiable: autograd's gradient


def kl_divergence(teacher_view, student_view):
    """KL(teacher || student) of ``(mean, mean of 1 - p or None)`` pairs, the teacher detached."""
    (p_t, absent_t), (p_s, absent_s) = teacher_view, student_view
    p_t = p_t.detach()
    kl = (p_t * (p_t / p_s).log()).sum()
    if absent_t is not None:  # sigmoids: Bernoulli KLs over (p, 1 - p)
        absent_t = absent_t.detach()
        kl = kl + (absent_t * (absent_t / absent_s).log()).sum()
    return kl


@settings(max_examples=40, deadline=None)
@given(pairs=st.integers(1, 3), classes=st.integers(1, 5), elements=st.integers(1, 30),
       temperature=st.floats(0.5, 6), sigmoid=st.booleans(), seed=st.integers(0, 2**31),
       teacher=st.sampled_from(['confidence', 'confident_correct', 'symmetric']),
       weighting=st.sampled_from(['classes', 'elements']))
def test_matches_reference(pairs, classes, elements, temperature, sigmoid, seed, teacher, weighting):
    torch.manual_seed(seed)
    channels = classes if sigmoid else classes + 1
    logits = torch.randn(2 * pairs, channels, elements) * 3
    labels = torch.randint(-1, classes + 1, (2 * pairs, elements))
    loss = pair_kl_divergence(logits, labels, classes, temperature, teacher, use_sigmoid=sigmoid, weighting=weighting)
    expected = reference_loss(logits, labels, classes, temperature, sigmoid, teacher, weighting)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5, abs_tol=1e-9)  # both float64; the loss comes back float32


@settings(max_examples=40, deadline=None)
@given(pairs=st.integers(1, 3), classes=st.integers(1, 5), elements=st.integers(1, 30),
       temperature=st.floats(0.5, 6), sigmoid=st.booleans(), seed=st.integers(0, 2**31),
       teacher=st.sampled_from(['confidence', 'confident_correct', 'symmetric']),
       weighting=st.sampled_from(['classes', 'elements']))
def test_hand_written_gradient_matches_autograd_through_the_reference(pairs, classes, elements, temperature,
                                                                      sigmoid, seed, teacher, weighting):
    torch.manual_seed(seed)
    channels = classes if sigmoid else classes + 1
    logits = torch.randn(2 * pairs, channels, elements, dtype=torch.float64) * 3
    labels = torch.randint(-1, classes + 1, (2 * pairs, elements))
    ours, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    pair_kl_divergence(ours, labels, classes, temperature, teacher, use_sigmoid=sigmoid, weighting=weighting).backward()
    expected = reference_loss(theirs, labels, classes, temperature, sigmoid, teacher, weighting)
    if isinstance(expected, float):  # no shared class: no gradient anywhere
        assert torch.all(ours.grad == 0)
        return
    expected.backward()
    assert torch.allclose(ours.grad, theirs.grad, rtol=1e-7, atol=1e-12)
    assert ours.grad.dtype == logits.dtype


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_gradient_comes_back_in_the_logits_dtype(dtype):
    logits = torch.randn(2, 3, 5).to(dtype).requires_grad_()
    loss = pair_kl_divergence(logits, torch.zeros(2, 5, dtype=torch.long), 3)
    (2 * loss).backward()
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_a_loss_scaled_fp16_gradient_keeps_the_small_values_the_scale_protects():
    """AMP scales the loss so that small gradients survive fp16: the gradient is scaled before
    it is cast, as autograd through the float64 computation does."""
    torch.manual_seed(0)
    base = torch.randn(1, 3, 1024)
    logits = torch.cat([base, base + 1e-2 * torch.randn(1, 3, 1024)]).half()  # near-equal views
    labels = torch.zeros(2, 1024, dtype=torch.long)
    reference = logits.float().requires_grad_()
    pair_kl_divergence(reference, labels, 3).backward()
    assert 0 < reference.grad.abs().max() < 1e-6  # fp16 subnormals: a step of 6e-8
    scaled = logits.clone().requires_grad_()
    (pair_kl_divergence(scaled, labels, 3) * 2.0**16).backward()
    assert scaled.grad.dtype == torch.float16
    assert torch.allclose(scaled.grad.float(), reference.grad * 2.0**16, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize('sigmoid', [False, True])
def test_a_student_that_all_but_rules_out_the_class_still_learns(sigmoid):
    """Probabilities of 1e-13 and less are far from the log's floor: the KL is exact and reaches the student."""
    teacher_logits = torch.tensor([[[8.0], [-8.0]]])  # (1, C=2, M=1), confident in class 0
    student_logits = torch.tensor([[[-30.0], [30.0]]], requires_grad=True)  # class 0 at 1e-13 or less
    logits = torch.cat([teacher_logits, student_logits])
    labels = torch.zeros(2, 1, dtype=torch.long)
    loss = pair_kl_divergence(logits, labels, 2, temperature=1.0, use_sigmoid=sigmoid)
    assert math.isclose(loss.item(), reference_loss(logits.detach(), labels, 2, 1.0, sigmoid), rel_tol=1e-5)
    loss.backward()
    assert student_logits.grad[0, 0, 0] < -0.5  # pushed towards class 0, not cut off at a floor


def test_zero_when_views_agree_class_by_class():
    torch.manual_seed(0)
    view = torch.randn(1, 4, 10)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3, 255, 255]])
    # the second view shows the same elements in another order: same class-conditional means
    permutation = torch.randperm(10)
    logits = torch.cat([view, view[:, :, permutation]])
    loss = pair_kl_divergence(logits, torch.cat([labels, labels[:, permutation]]), 4)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_only_the_student_view():
    logits = torch.zeros(2, 3, 4)
    logits[0, 1] = 3.0  # view 0 is confident on class 1: teacher
    logits[1, 1] = 0.5
    logits.requires_grad_(True)
    labels = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1]])
    loss = pair_kl_divergence(logits, labels, 3)
    loss.backward()
    assert loss.item() > 0
    assert torch.all(logits.grad[0] == 0)
    assert logits.grad[1].abs().sum() > 0


def test_a_tie_in_confidence_makes_the_first_view_the_teacher():
    # sigmoids: both views give class 0 exactly 0.5 (at every temperature) and differ on class 1
    logits = torch.tensor([[0.0, 2.0], [0.0, -2.0]])[..., None].requires_grad_()
    pair_kl_divergence(logits, torch.zeros(2, 1, dtype=torch.long), 2, use_sigmoid=True).backward()
    assert torch.all(logits.grad[0] == 0) and logits.grad[1].abs().sum() > 0


def test_symmetric_rule_trains_both_views():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    labels = torch.zeros(2, 5, dtype=torch.long)
    pair_kl_divergence(logits, labels, 3, teacher='symmetric').backward()
    assert logits.grad[0].abs().sum() > 0 and logits.grad[1].abs().sum() > 0


def test_ignored_and_unshared_elements_do_not_count():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 6)
    labels = torch.tensor([[0, 0, 0, 255, 255, 1], [0, 0, 0, 2, 2, 255]])
    changed = logits.clone()
    changed[0, :, 3:] = torch.randn(3, 3) * 10  # ignored pixels and a class absent from view 1
    changed[1, :, 3:] = torch.randn(3, 3) * 10  # a class absent from view 0 and an ignored pixel
    assert pair_kl_divergence(logits, labels, 3).item() == pytest.approx(
        pair_kl_divergence(changed, labels, 3).item(), rel=1e-6)


def test_no_shared_class_gives_zero_with_graph():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    labels = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    loss = pair_kl_divergence(logits, labels, 3)
    assert loss.item() == 0.0 and loss.requires_grad


def test_float32_and_finite_for_confident_half_precision_logits():
    logits = torch.tensor([[[60.0, -60.0]], [[-60.0, 60.0]]]).transpose(1, 2).to(torch.bfloat16)
    logits = logits.expand(2, 2, 8).contiguous()
    labels = torch.zeros(2, 8, dtype=torch.long)
    loss = pair_kl_divergence(logits, labels, 2, temperature=1.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() > 0


def class_means(probs, weights):
    """``(N, K, C)`` class means, as the loss computes them, and ``(N, K)`` total weights."""
    shares, counts = class_shares(weights)
    return torch.bmm(probs, shares).transpose(1, 2), counts[:, 0]


def test_class_means_and_counts():
    probs = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]])
    means, counts = class_means(probs, class_weights(torch.tensor([[0, 1, 255]]), 3, torch.float32))
    assert counts.tolist() == [[1, 1, 0]]  # the ignored element counts for no class
    assert means[0, 1].tolist() == [0.0, 1.0] and means[0, 2].tolist() == [0.0, 0.0]
    means, counts = class_means(probs, torch.tensor([[[1.0, 0, 0], [0, 1, 0], [0, 3, 0]]]))  # weights
    assert counts.tolist() == [[1, 4, 0]] and means[0, 1].tolist() == [0.375, 0.625]
    # weights that total less than 1 still average: a class mean of distributions is one
    means, counts = class_means(probs, torch.tensor([[[0.25, 0, 0], [0, 0.125, 0], [0, 0.375, 0]]]))
    assert means[0, 0].tolist() == [1.0, 0.0] and means[0, 1].tolist() == [0.375, 0.625]
    assert counts.tolist() == [[0.25, 0.5, 0]] and means[0, 2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize('kwargs, message', [
    (dict(teacher='student'), 'teacher'),
    (dict(weighting='pixels'), 'weighting'),
    (dict(temperature=0.0), 'temperature'),  # gave NaN
    (dict(temperature=-1.0), 'temperature'),  # gave a finite loss
    (dict(temperature=True), 'temperature'),
    (dict(loss_weight=-5.0), 'loss_weight'),  # gave a negative loss
    (dict(loss_weight=float('nan')), 'loss_weight'),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pair_kl_divergence(torch.zeros(2, 2, 1), torch.zeros(2, 1, dtype=torch.long), 2, **kwargs)


def test_numpy_numbers_are_numbers():
    logits, labels = torch.randn(2, 3, 4), torch.randint(0, 3, (2, 4))
    expected = pair_kl_divergence(logits, labels, 3, temperature=2.0, loss_weight=0.5)
    assert expected.item() > 0
    assert pair_kl_divergence(logits, labels, 3, temperature=np.float32(2.0), loss_weight=np.float64(0.5)) == expected
    assert pair_kl_divergence(logits, labels, 3, temperature=np.int64(2), loss_weight=0.5) == expected


def test_element_weighting_gives_a_class_its_elements_share():
    """One element of class 0 whose views disagree, nine of class 1 whose views agree: with
    'classes' class 0's KL is half the loss, with 'elements' a tenth."""
    labels = torch.tensor([[0] + [1] * 9] * 2)
    logits = torch.zeros(2, 2, 10)
    logits[0, 0, 0], logits[1, 1, 0] = 2.0, 1.0  # the class-0 element: the views disagree
    logits[:, 0, 1:] = 3.0  # the class-1 elements: both views predict the same
    by_classes = pair_kl_divergence(logits, labels, 2, temperature=1.0, weighting='classes')
    by_elements = pair_kl_divergence(logits, labels, 2, temperature=1.0)  # the default
    probs = logits[:, :, 0].softmax(1)
    kl = (probs[0] * (probs[0] / probs[1]).log()).sum()  # view 0 is the more confident on class 0
    assert by_classes.item() == pytest.approx(kl.item() / 2, rel=1e-5)
    assert by_elements.item() == pytest.approx(kl.item() / 10, rel=1e-5)


def test_odd_number_of_views_is_rejected():
    with pytest.raises(ValueError, match='pairs'):
        pair_kl_divergence(torch.zeros(3, 2, 1), torch.zeros(3, 1, dtype=torch.long), 2)


def test_all_ignored_labels_give_zero():
    logits = torch.randn(4, 3, 6, requires_grad=True)
    loss = pair_kl_divergence(logits, torch.full((4, 6), 255), 3)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize('sigmoid', [False, True])
def test_never_negative_for_near_equal_views(sigmoid):
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 50) * 8
    logits[1] = logits[0] + 1e-4 * torch.randn(6, 50)
    labels = torch.randint(0, 6, (2, 50))
    labels[1] = labels[0]
    loss = pair_kl_divergence(logits, labels, num_classes=6, temperature=4.0, use_sigmoid=sigmoid)
    assert loss.item() >= 0.0


def test_near_equal_sigmoid_views_of_an_untrained_dense_head_give_a_positive_kl():
    """At a dense head's prior (every sigmoid near 0.01) the views differ by 1e-5 in logit:
    the KL (about 1e-11 per class) must come out positive, as the float64 reference says."""
    prior = -math.log(99.0)
    logits = torch.full((2, 10, 4), prior)
    logits[1] += 1e-5 * torch.arange(1, 41, dtype=torch.float32).view(10, 4)
    labels = torch.tensor([[3, 3, 5, 5], [3, 3, 5, 5]])
    loss = pair_kl_divergence(logits, labels, 10, temperature=4.0, use_sigmoid=True)
    expected = reference_loss(logits, labels, 10, 4.0, use_sigmoid=True)
    assert loss.dtype == torch.float32 and 0 < loss.item()
    assert loss.item() == pytest.approx(float(expected), rel=1e-2)


def test_a_teacher_wrong_about_the_class_teaches_nothing_under_confident_correct():
    # class 0 in both views; view 0 is the more confident on it (0.3 > 0.2) but predicts class 1
    logits = torch.tensor([[0.3, 0.7], [0.2, 0.8]]).log()[..., None]  # (2 views, 2 classes, 1 element)
    labels = torch.zeros(2, 1, dtype=torch.long)
    assert pair_kl_divergence(logits, labels, 2, teacher='confidence').item() > 0
    assert pair_kl_divergence(logits, labels, 2, teacher='confident_correct').item() == 0.0
    right = torch.tensor([[0.9, 0.1], [0.6, 0.4]]).log()[..., None]  # the teacher predicts class 0
    assert pair_kl_divergence(right, labels, 2, teacher='confident_correct').item() == pytest.approx(
        pair_kl_divergence(right, labels, 2, teacher='confidence').item())


@pytest.mark.parametrize('sigmoid', [False, True])
@pytest.mark.parametrize('weight', [0.1, 0.0, 2.5])
def test_loss_weight_scales_loss_and_gradient_as_multiplying_the_loss_would(sigmoid, weight):
    """Folded into the T^2 factor, the weight gives the loss and, bit for bit, the gradient of
    ``weight * loss``: the same training, one multiplication and its backward fewer."""
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (4, 50), generator=generator)
    base = torch.randn(4, 3, 50, generator=generator)
    folded_logits, scaled_logits = base.clone().requires_grad_(), base.clone().requires_grad_()
    folded = pair_kl_divergence(folded_logits, labels, 3, use_sigmoid=sigmoid, loss_weight=weight)
    scaled = weight * pair_kl_divergence(scaled_logits, labels, 3, use_sigmoid=sigmoid)
    folded.backward()
    scaled.backward()
    assert folded.item() == pytest.approx(scaled.item(), rel=1e-6, abs=0.0)
    assert torch.equal(folded_logits.grad, scaled_logits.grad)
    assert (folded_logits.grad != 0).any() == (weight != 0)


@pytest.mark.parametrize('student_logit', [36.0, 37.0, 60.0])
def test_a_saturated_sigmoid_student_keeps_its_exact_loss_and_gradient(student_logit):
    """``1 - sigmoid(z)`` rounds to 0 in float64 from z = 37: computed as ``sigmoid(-z)``, the
    KL stays exact and the confidently wrong student keeps its pull (d KL / dz = sigmoid(z) - q)."""
    logits = torch.tensor([[[5.0], [0.0]], [[0.0], [student_logit]]], dtype=torch.float64, requires_grad=True)
    loss = pair_kl_divergence(logits, torch.tensor([[0], [0]]), 2, use_sigmoid=True)
    loss.backward()

    def bernoulli_kl(teacher_logit, logit):  # in log space: exact for any logit
        q = torch.tensor(teacher_logit, dtype=torch.float64).sigmoid()
        log_m, log_absent = F.logsigmoid(torch.tensor(logit)), F.logsigmoid(-torch.tensor(logit))
        return q * (q.log() - log_m) + (1 - q) * ((1 - q).log() - log_absent)
    exact = bernoulli_kl(5.0, 0.0) + bernoulli_kl(0.0, student_logit)  # view 0 teaches class 0
    assert loss.item() == pytest.approx(exact.item(), rel=1e-6)
    assert logits.grad[1, 1, 0].item() == pytest.approx(0.5, rel=1e-6)
    assert logits.grad[0].abs().sum() == 0  # the teacher is detached


@pytest.mark.parametrize('gap', [22.0, 30.0, 60.0])
def test_a_student_probability_far_below_1e_100_keeps_its_exact_loss_and_gradient(gap):
    """At T = 0.1 a logit gap of 30 gives a student probability of e^-300: a floor of the logs
    at 1e-100 flattened the loss and cut the gradient from a gap of 23."""
    temperature = 0.1
    logits = torch.tensor([[[3.0], [0.0], [2.9]], [[0.0], [0.0], [-gap]]], dtype=torch.float64, requires_grad=True)
    loss = pair_kl_divergence(logits, torch.tensor([[0], [0]]), 3, temperature=temperature)
    loss.backward()
    reference = logits.detach().clone().requires_grad_()
    log_q = (reference[0, :, 0] / temperature).log_softmax(0).detach()
    log_m = (reference[1, :, 0] / temperature).log_softmax(0)
    exact = temperature**2 * (log_q.exp() * (log_q - log_m)).sum()
    exact.backward()
    assert loss.item() == pytest.approx(exact.item(), rel=1e-6)
    assert torch.allclose(logits.grad, reference.grad, rtol=1e-6, atol=1e-12)


def test_integer_class_weights_are_refused():
    logits = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match='floating point'):
        pair_kl_divergence(logits, torch.ones(2, 4, 3, dtype=torch.long), 3)


def test_below_the_floor_of_the_logs_the_student_gets_no_gradient():
    """A sigmoid student mean of about 1e-304 lies below the 1e-300 floor: as under a clamp, its
    gradient is 0 (without the mask it came out -4.9e-5, the wrong sign, 10^300 too large)."""
    logits = torch.tensor([[[-700.0]], [[0.0]]], dtype=torch.float64, requires_grad=True)  # view 0 the student
    pair_kl_divergence(logits, torch.tensor([[0], [0]]), 1, use_sigmoid=True).backward()
    reference = logits.detach().clone().requires_grad_()
    teacher = reference[1, 0, 0].sigmoid().detach()
    student = reference[0, 0, 0].sigmoid().clamp(min=1e-300)
    absent = (-reference[0, 0, 0]).sigmoid()
    exact = teacher * (teacher / student).log() + (1 - teacher) * ((1 - teacher) / absent).log()
    exact.backward()
    assert torch.allclose(logits.grad, reference.grad, rtol=0, atol=1e-12)


def random_views(classes):
    torch.manual_seed(0)
    return torch.randn(4, classes, 6), torch.randint(0, classes, (4, 6))


def test_sigmoid_logits_need_one_channel_per_class():
    logits, labels = random_views(classes=3)
    with pytest.raises(ValueError, match='sigmoid logits need one channel per class'):
        pair_kl_divergence(logits, labels.clamp(max=1), 2, use_sigmoid=True)


def test_fewer_softmax_channels_than_classes_name_both():
    logits, labels = random_views(classes=2)
    with pytest.raises(ValueError, match='2 logit channels cannot cover 3 classes'):
        pair_kl_divergence(logits, labels, 3)
