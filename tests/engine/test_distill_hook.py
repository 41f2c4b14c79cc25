from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch.utils.data import DataLoader

from ipswap_mm.datasets import class_index, pair_sampler
from ipswap_mm.datasets.pair_sampler import IntraClassPairSampler
from ipswap_mm.engine.distill_hook import (
    IPSDistillHook,
)
from tests.models.seg.test_seg_patch_swap import seg_batch


def tiny_segmentor(with_swap=True):
    init_default_scope('mmseg')
    augments = [dict(type='SegPatchSwap', patch_size=8, swap_prob=1.0)] if with_swap else None
    norm = dict(type='BN', requires_grad=True)
    return MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='BatchAugSegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
                               size=(32, 32), batch_augments=augments),
        backbone=dict(type='ResNetV1c', depth=18, num_stages=4, out_indices=(3,), norm_cfg=norm,
                      dilations=(1, 1, 1, 1), strides=(1, 1, 1, 1)),
        decode_head=dict(type='FCNHead', in_channels=512, channels=16, num_convs=1, num_classes=5,
                         norm_cfg=norm, in_index=0, loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(), test_cfg=dict(mode='whole')))


class Indices:
    metainfo = dict(classes=tuple('abc'))

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return index

    def get_data_info(self, index):
        return dict(instances=[dict(bbox_label=index % 3, ignore_flag=0)])


def pair_loader(batch_size=4, monkeypatch=None):
    monkeypatch.setattr(pair_sampler, 'get_dist_info', lambda: (0, 1))
    monkeypatch.setattr(class_index, 'get_dist_info', lambda: (0, 1))
    return DataLoader(Indices(), batch_size=batch_size, sampler=IntraClassPairSampler(Indices(), seed=0))


def fake_runner(model, loader):
    return SimpleNamespace(model=model, train_dataloader=loader, train_loop=SimpleNamespace(dataloader=loader), seed=0)


def test_adds_pair_loss_without_touching_the_model(monkeypatch):
    model = tiny_segmentor()
    keys = set(model.state_dict())
    hook = IPSDistillHook(loss=dict(type='PairKLDivLoss', temperature=2.0))
    hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    images, samples = seg_batch(4, 32, 32)
    for sample in samples:  # every image holds class 1 on its left half
        sample.gt_sem_seg.data[:, :, :16] = 1
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert losses['loss_ips_kl'].item() > 0
    assert 'loss_ips_kl' in losses and torch.isfinite(losses['loss_ips_kl'])
    losses['loss_ips_kl'].backward()
    assert model.decode_head.conv_seg.weight.grad.abs().sum() > 0
    assert set(model.state_dict()) == keys and type(model).__name__ == 'EncoderDecoder'
    hook.after_train(None)
    assert 'loss_ips_kl' not in model(**data, mode='loss')


def test_a_use_sigmoid_the_classifier_contradicts_fails_before_the_first_step(monkeypatch):
    """The segmentor scores with a softmax: the hook says so when training starts, not in
    the first forward after the dataset scan and the weights."""
    model = tiny_segmentor()
    hook = IPSDistillHook(loss=dict(type='PairKLDivLoss', use_sigmoid=True))
    with pytest.raises(ValueError, match=r'PairKLDivLoss.use_sigmoid=True \(custom_hooks\).*softmax'):
        hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    assert not model._forward_hooks and not model.data_preprocessor.batch_augments.augments[0].pair_loss_attached


def test_the_swap_knows_whether_a_pair_loss_is_attached(monkeypatch):
    model = tiny_segmentor()
    swap = model.data_preprocessor.batch_augments.augments[0]
    hook = IPSDistillHook()
    assert not swap.pair_loss_attached
    hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    assert swap.pair_loss_attached
    hook.after_train(None)
    assert not swap.pair_loss_attached


def test_integer_images_are_not_summed_for_nan_and_float_ones_are(monkeypatch):
    """uint8 images (as the stock pipelines pack them), normalised by a checked mean and std,
    hold no NaN or inf: the swap skips the check (on a GPU, a wait for the batch every step).
    Float images (MMDetection's PhotoMetricDistortion makes them) are still checked."""
    from ipswap_mm.models.pair_swap_batch_aug import PairSwapBatchAug
    model = tiny_segmentor()
    swap = model.data_preprocessor.batch_augments.augments[0]
    hook = IPSDistillHook()
    hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    checked = []
    check = PairSwapBatchAug.check_inputs_finite
    monkeypatch.setattr(PairSwapBatchAug, 'check_inputs_finite',
                        lambda self, *args: checked.append(True) or check(self, *args))
    images, samples = seg_batch(4, 32, 32)
    integer = (images * 255).to(torch.uint8)
    swapped = model.data_preprocessor(dict(inputs=list(integer), data_samples=samples), training=True)['inputs']
    assert checked == [] and swap.inputs_integer and not torch.equal(swapped, integer.float())
    images[2, 0, 3, 5] = float('nan')
    for index, sample in enumerate(samples):
        sample.set_metainfo(dict(img_path=f'{index}.jpg'))
    with pytest.raises(ValueError, match=r'2\.jpg \(batch index 2\)'):
        model.data_preprocessor(dict(inputs=list(images), data_samples=samples), training=True)
    assert checked == [True] and not swap.inputs_integer
    model.data_preprocessor(dict(inputs=list(integer), data_samples=samples), training=True)
    hook.after_train(None)
    assert not swap.inputs_integer  # the swap alone, without the hook, checks every batch


def test_integer_images_a_tiny_std_overflows_are_checked(monkeypatch):
    """A std so small that (255 - mean) / std overflows float32: integer images then can hold
    inf after all, and the check names them (a review's case trained on a NaN loss)."""
    model = tiny_segmentor()
    model.data_preprocessor.register_buffer('std', torch.full((3, 1, 1), 1e-39), False)
    swap = model.data_preprocessor.batch_augments.augments[0]
    IPSDistillHook().before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    images, samples = seg_batch(4, 32, 32)
    integer = (images * 255).to(torch.uint8)
    integer[1, :, 0, 0] = 255
    with pytest.raises(ValueError, match=r'NaN or inf values in \d of 4 images'):
        model.data_preprocessor(dict(inputs=list(integer), data_samples=samples), training=True)
    assert not swap.inputs_integer


@pytest.mark.parametrize('key, values', [('std', [1, 0, 1]), ('mean', [0, float('nan'), 0])])
def test_a_mean_or_std_that_makes_images_nan_names_the_key(monkeypatch, key, values):
    model = tiny_segmentor()
    model.data_preprocessor.register_buffer(key, torch.tensor(values, dtype=torch.float32).view(-1, 1, 1), False)
    with pytest.raises(ValueError, match=f'model.data_preprocessor.{key}='):
        IPSDistillHook().before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))


def test_batch_that_skipped_the_swap_is_an_error(monkeypatch):
    model = tiny_segmentor()
    IPSDistillHook().before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    images, samples = seg_batch(4, 32, 32)
    model.train()
    with pytest.raises(RuntimeError, match='batch_augments'):
        model(inputs=images, data_samples=samples, mode='loss')


def test_loss_without_swap_names_the_key(monkeypatch):
    with pytest.raises(ValueError, match='batch_augments'):
        IPSDistillHook().before_train(fake_runner(tiny_segmentor(with_swap=False),
                                                  pair_loader(monkeypatch=monkeypatch)))


def test_bf16_autocast_keeps_the_pair_loss_float32_and_finite(monkeypatch):
    model = tiny_segmentor()
    IPSDistillHook().before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    images, samples = seg_batch(4, 32, 32)
    for sample in samples:
        sample.gt_sem_seg.data[:, :, :16] = 1
        sample.gt_sem_seg.data[:, 24:] = 255  # an ignored strip
    data = model.data_preprocessor(dict(inputs=list(images * 1e3), data_samples=samples), training=True)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    loss = losses['loss_ips_kl']
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.decode_head.conv_seg.weight.grad).all()


def test_warmup_ramps_the_pair_loss_in(monkeypatch):
    model = tiny_segmentor()
    hook = IPSDistillHook(warmup_iters=4)
    hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    images, samples = seg_batch(4, 32, 32)
    for sample in samples:
        sample.gt_sem_seg.data[:, :, :16] = 1
    model.train()
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), training=True)
    losses = {}
    for iteration in (0, 1, 3, 10):
        hook.before_train_iter(SimpleNamespace(iter=iteration), 0)
        torch.manual_seed(0)  # the same dropout every time: the same logits, only the scale differs
        with torch.no_grad():
            losses[iteration] = model(**data, mode='loss')['loss_ips_kl'].item()
    full = losses[10]
    assert full > 0
    assert losses[0] == pytest.approx(full / 4) and losses[1] == pytest.approx(full / 2)
    assert losses[3] == pytest.approx(full)


@pytest.mark.parametrize('value', [-1, 2.5, True])
def test_bad_warmup_names_the_key(value):
    with pytest.raises(ValueError, match='warmup_iters'):
        IPSDistillHook(warmup_iters=value)


@pytest.mark.parametrize('loss, error, key', [(dict(temperature=-1.0), ValueError, 'temperature'),
                                               (dict(temprature=2.0), TypeError, 'temprature')])
def test_bad_loss_options_fail_when_the_hook_is_built(loss, error, key):
    """Before the runner reads the dataset or loads weights (the hook is built with the runner)."""
    with pytest.raises(error, match=key):
        IPSDistillHook(loss=dict(type='PairKLDivLoss', **loss))


def test_the_swap_follows_the_pipelines_generate_edge(monkeypatch):
    """PIDNet's pipeline draws edge maps with GenerateEdge(edge_width=4); the swap draws the
    swapped labels' edges with the same settings."""
    from mmcv.transforms import Compose
    from mmseg.datasets.transforms import GenerateEdge
    model = tiny_segmentor()
    loader = pair_loader(monkeypatch=monkeypatch)
    loader.dataset.pipeline = Compose([dict(type='RandomFlip', prob=0.5), GenerateEdge(edge_width=4, ignore_index=250)])
    IPSDistillHook().before_train(fake_runner(model, loader))
    swap = model.data_preprocessor.batch_augments.augments[0]
    assert (swap.edge_width, swap.edge_ignore_index) == (4, 250)


def test_a_failed_attach_leaves_no_reader_on_the_head():
    model = tiny_segmentor()
    hook = IPSDistillHook(loss=dict(type='PairKLDivLoss', use_sigmoid=True))
    with pytest.raises(ValueError, match='use_sigmoid'):
        hook.attach(model)
    assert not model.decode_head.conv_seg._forward_hooks and not model.data_preprocessor._forward_pre_hooks


def test_attaching_twice_keeps_one_reader_and_one_pair_loss():
    model = tiny_segmentor()
    hook = IPSDistillHook()
    hook.attach(model)
    hook.attach(model)  # a second before_train
    assert len(model._forward_hooks) == len(model.decode_head.conv_seg._forward_hooks) == 1
    assert len(model.data_preprocessor._forward_pre_hooks) == 1
    images, samples = seg_batch(4, 32, 32)
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), training=True)
    model.train()
    assert torch.isfinite(model(**data, mode='loss')['loss_ips_kl'])
    hook.detach()
    assert not model._forward_hooks and not model.decode_head.conv_seg._forward_hooks
    assert not model.data_preprocessor._forward_pre_hooks


def test_the_hook_of_a_custom_hooks_list_is_built_as_the_runner_builds_it():
    from ipswap_mm.engine.distill_hook import ips_hook_of
    hook = ips_hook_of([dict(type='EMAHook'), dict(type='IPSDistillHook', priority='LOW', warmup_iters=5,
                                                   loss=dict(type='PairKLDivLoss', temperature=2.0))])
    assert isinstance(hook, IPSDistillHook) and hook.warmup_iters == 5 and hook.loss.temperature == 2.0
    with pytest.raises(ValueError, match="custom_hooks holds no dict\\(type='IPSDistillHook'\\)"):
        ips_hook_of([dict(type='EMAHook')])
