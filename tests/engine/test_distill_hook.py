from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop, loops
from mmseg.registry import MODELS
from torch.utils.data import DataLoader

from ipswap_mm.datasets import class_index, pair_sampler
from ipswap_mm.datasets.pair_sampler import IntraClassPairSampler
from ipswap_mm.engine.distill_hook import (
    IPSDistillHook,
    check_pair_dataloader,
    check_sampler_ignore_index,
    follow_generate_edge,
    follow_resumed_seed,
    set_sampler_infinite,
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


def test_dataloader_checks_name_the_key(monkeypatch):
    with pytest.raises(ValueError, match='batch_size'):
        check_pair_dataloader(pair_loader(batch_size=3, monkeypatch=monkeypatch))
    with pytest.raises(ValueError, match='IntraClassPairSampler'):
        check_pair_dataloader(DataLoader(Indices(), batch_size=4, shuffle=True))


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


def loop_of(loop_type, loader):
    """A train loop of ``loop_type`` with only its dataloader (what the hook reads)."""
    loop = object.__new__(loop_type)
    loop.dataloader = loader
    return loop


@pytest.mark.parametrize('loop_type, infinite', [(IterBasedTrainLoop, True), (EpochBasedTrainLoop, False)])
def test_the_pair_sampler_is_infinite_under_an_iteration_based_loop_only(monkeypatch, loop_type, infinite):
    loader = pair_loader(monkeypatch=monkeypatch)
    assert loader.sampler.infinite is None
    set_sampler_infinite(loop_of(loop_type, loader))
    assert loader.sampler.infinite is infinite
    loader.sampler.infinite = False  # set in the config: kept
    set_sampler_infinite(loop_of(IterBasedTrainLoop, loader))
    assert loader.sampler.infinite is False


def test_an_infinite_pair_sampler_under_an_epoch_based_loop_names_the_key(monkeypatch):
    loader = pair_loader(monkeypatch=monkeypatch)
    loader.sampler.infinite = True
    with pytest.raises(ValueError, match='train_dataloader.sampler.infinite=True never ends an epoch'):
        set_sampler_infinite(loop_of(EpochBasedTrainLoop, loader))


def test_a_resume_that_restores_the_runner_seed_restores_the_pairs(monkeypatch):
    """randomness.seed unset: the runner built the sampler with the seed it drew (11), then the
    resume restored the checkpoint's (0). The loop's iterator, whose worker had already
    drawn indices with seed 11, is built again and yields the pairs of seed 0."""
    def one_epoch(seed, **loader_args):
        return [batch.tolist() for batch in DataLoader(Indices(), batch_size=2, **loader_args,
                                                       sampler=IntraClassPairSampler(Indices(), seed=seed))]

    loader = pair_loader(batch_size=2, monkeypatch=monkeypatch)
    assert one_epoch(0) != one_epoch(11)
    loader = DataLoader(Indices(), batch_size=2, sampler=IntraClassPairSampler(Indices(), seed=11), num_workers=1)
    loop = loop_of(IterBasedTrainLoop, loader)
    loop.dataloader_iterator = loops._InfiniteDataloaderIterator(loader)  # its worker prefetches
    follow_resumed_seed(loop, seed_at_build=11, seed=0)
    assert loader.sampler.seed == 0
    assert [next(loop.dataloader_iterator).tolist() for _ in range(4)] == one_epoch(0)


@pytest.mark.parametrize('sampler_seed, seed_at_build, seed', [(5, 11, 0), (11, 11, 11)])
def test_a_seed_of_the_sampler_or_an_unchanged_one_is_kept(monkeypatch, sampler_seed, seed_at_build, seed):
    loader = pair_loader(monkeypatch=monkeypatch)
    loader.sampler.seed = sampler_seed  # 5: given to the sampler in the config, not the runner's
    loop = loop_of(IterBasedTrainLoop, loader)
    loop.dataloader_iterator = iterator = object()
    follow_resumed_seed(loop, seed_at_build, seed)
    assert loader.sampler.seed == sampler_seed and loop.dataloader_iterator is iterator


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


def test_generate_edge_is_found_through_dataset_wrappers_and_must_agree():
    from mmcv.transforms import Compose
    from mmseg.datasets.transforms import GenerateEdge
    model = tiny_segmentor()
    swap = model.data_preprocessor.batch_augments.augments[0]
    joined = SimpleNamespace(datasets=[SimpleNamespace(dataset=SimpleNamespace(pipeline=Compose([GenerateEdge(3)])))])
    follow_generate_edge(model, joined)
    assert (swap.edge_width, swap.edge_ignore_index) == (3, 255)
    with pytest.raises(ValueError, match='edge_width=3.*edge_width=5'):
        follow_generate_edge(model, SimpleNamespace(pipeline=Compose([GenerateEdge(5)])))
    with pytest.raises(ValueError, match='different'):
        follow_generate_edge(model, SimpleNamespace(datasets=[SimpleNamespace(pipeline=Compose([GenerateEdge(w)]))
                                                              for w in (3, 5)]))


@pytest.mark.parametrize('head_ignores, sampler_excludes, warns', [(255, {255}, False), (0, {255}, True),
                                                                    (0, {0, 255}, False), (None, set(), False),
                                                                    (-1, {255}, False)])
def test_a_head_ignoring_a_value_the_sampler_pairs_on_warns(monkeypatch, head_ignores, sampler_excludes, warns):
    from ipswap_mm.engine import distill_hook
    messages = []
    monkeypatch.setattr(distill_hook, 'print_log', lambda message, **kwargs: messages.append(message))
    model = SimpleNamespace(decode_head=SimpleNamespace(ignore_index=head_ignores))
    sampler = SimpleNamespace(ignore_index=255, class_index=SimpleNamespace(excluded=frozenset(sampler_excludes)))
    check_sampler_ignore_index(model, sampler)
    assert len(messages) == warns
    if warns:
        assert 'model.decode_head.ignore_index=0' in messages[0]
        assert 'train_dataloader.sampler.ignore_index' in messages[0]



def test_a_cascade_is_checked_on_the_head_the_pair_kl_reads(monkeypatch):
    """``CascadeEncoderDecoder``: ``decode_head`` is a list; its last head with a classifier counts."""
    from ipswap_mm.engine import distill_hook
    messages = []
    monkeypatch.setattr(distill_hook, 'print_log', lambda message, **kwargs: messages.append(message))

    def head(ignore_index, classifier=True):
        module = torch.nn.Module()
        module.ignore_index = ignore_index
        if classifier:
            module.conv_seg = torch.nn.Conv2d(4, 3, 1)
        return module
    sampler = SimpleNamespace(ignore_index=255, class_index=SimpleNamespace(excluded=frozenset({255})))
    check_sampler_ignore_index(SimpleNamespace(decode_head=torch.nn.ModuleList([head(255), head(0)])), sampler)
    assert len(messages) == 1 and 'ignore_index=0' in messages[0]
    check_sampler_ignore_index(SimpleNamespace(decode_head=torch.nn.ModuleList([head(255), head(0, False)])),
                               sampler)
    assert len(messages) == 1  # the head without a classifier is not the one distilled


@pytest.mark.parametrize('swap_type, pads, warns', [('DetPatchSwap', True, True), ('DetPatchSwap', False, False),
                                                   ('SegPatchSwap', True, False)])
def test_a_pipeline_pad_the_swap_cannot_keep_out_warns(monkeypatch, swap_type, pads, warns):
    """YOLOX and RTMDet pad in the pipeline; detection has no label map to find that padding in."""
    from mmcv.transforms import Compose
    from mmdet.datasets.transforms import Pad, RandomFlip

    from ipswap_mm.engine import distill_hook
    from ipswap_mm.models.det.det_patch_swap import DetPatchSwap
    from ipswap_mm.models.seg.data_preprocessor import BatchAugSegDataPreProcessor
    from ipswap_mm.models.seg.seg_patch_swap import SegPatchSwap
    messages = []
    monkeypatch.setattr(distill_hook, 'print_log', lambda message, **kwargs: messages.append(message))
    swap = dict(DetPatchSwap=DetPatchSwap, SegPatchSwap=SegPatchSwap)[swap_type]()
    if swap_type == 'SegPatchSwap':  # its preprocessor finds the pipeline's padding in the label maps
        model = SimpleNamespace(data_preprocessor=BatchAugSegDataPreProcessor(
            mean=[0, 0, 0], std=[1, 1, 1], batch_augments=[dict(type='SegPatchSwap')]))
    else:
        model = SimpleNamespace(data_preprocessor=torch.nn.ModuleList([swap]))
    steps = [RandomFlip(prob=0.5)] + ([Pad(size=(64, 64), pad_val=dict(img=(114, 114, 114)))] if pads else [])
    dataset = SimpleNamespace(dataset=SimpleNamespace(pipeline=Compose(steps)))  # inside a wrapper
    distill_hook.warn_pipeline_padding(model, dataset)
    assert len(messages) == warns
    if warns:
        assert 'pads (Pad' in messages[0] and 'DetPatchSwap' in messages[0]
