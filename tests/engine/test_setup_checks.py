from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop, loops
from torch.utils.data import DataLoader

from ipswap_mm.datasets import class_index, pair_sampler
from ipswap_mm.datasets.pair_sampler import IntraClassPairSampler
from ipswap_mm.engine import setup_checks
from ipswap_mm.engine.setup_checks import (
    check_normalisation,
    check_pair_dataloader,
    check_sampler_ignore_index,
    follow_generate_edge,
    follow_resumed_layout,
    follow_resumed_seed,
    note_integer_inputs,
    pair_stream_meta,
    set_sampler_infinite,
)
from tests.engine.test_distill_hook import Indices, pair_loader, tiny_segmentor


def test_dataloader_checks_name_the_key(monkeypatch):
    with pytest.raises(ValueError, match='batch_size'):
        check_pair_dataloader(pair_loader(batch_size=3, monkeypatch=monkeypatch))
    with pytest.raises(ValueError, match='IntraClassPairSampler'):
        check_pair_dataloader(DataLoader(Indices(), batch_size=4, shuffle=True))


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


def resumed_loop(monkeypatch, batch_size, iteration):
    loader = pair_loader(batch_size=batch_size, monkeypatch=monkeypatch)
    loader.sampler.infinite = True
    loop = loop_of(IterBasedTrainLoop, loader)
    loop._iter = iteration
    loop.dataloader_iterator = loops._InfiniteDataloaderIterator(loader)
    return loop


def test_a_resume_on_the_same_layout_is_left_to_mmengines_skip(monkeypatch):
    """The same world size and batch size: MMEngine's skip of the trained batches, which also
    replays the data pipeline's random draws, stays; a fresh run records where its pairs start."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    saved = pair_stream_meta(loop, (0, 0, 0))
    assert saved == dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=2)
    iterator = loop.dataloader_iterator
    assert follow_resumed_layout(loop, saved) == (0, 0, 0) and loop.dataloader_iterator is iterator
    assert follow_resumed_layout(loop, None) == (0, 0, 0)  # a checkpoint of an earlier version: as before
    assert pair_stream_meta(loop_of(EpochBasedTrainLoop, loop.dataloader), (0, 0, 0)) is None


def test_a_resume_on_another_batch_size_starts_the_pairs_where_the_run_stopped(monkeypatch):
    """Trained 3 iterations with batch 2 (3 of epoch 0's 4 pairs); resumed with batch 4: MMEngine's
    3 skip calls load nothing, then the batches are pair 3 of epoch 0 and the epoch-1 pairs."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    saved = dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1)
    assert follow_resumed_layout(loop, saved) == (0, 3, 3)
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
    pairs = [loop.dataloader.sampler.epoch_pairs(epoch).reshape(-1).tolist() for epoch in (0, 1)]
    assert [next(loop.dataloader_iterator).tolist() for _ in range(2)] == [pairs[0][6:] + pairs[1][:2],
                                                                             pairs[1][2:6]]
    assert pair_stream_meta(loop, (0, 3, 3)) == dict(epoch=0, pair=3, iter=3, world_size=1, pairs_per_iter=2)


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
    messages = []
    monkeypatch.setattr(setup_checks, 'print_log', lambda message, **kwargs: messages.append(message))
    model = SimpleNamespace(decode_head=SimpleNamespace(ignore_index=head_ignores))
    sampler = SimpleNamespace(ignore_index=255, class_index=SimpleNamespace(excluded=frozenset(sampler_excludes)))
    check_sampler_ignore_index(model, sampler)
    assert len(messages) == warns
    if warns:
        assert 'model.decode_head.ignore_index=0' in messages[0]
        assert 'train_dataloader.sampler.ignore_index' in messages[0]


def test_a_cascade_is_checked_on_the_head_the_pair_kl_reads(monkeypatch):
    """``CascadeEncoderDecoder``: ``decode_head`` is a list; its last head with a classifier counts."""
    messages = []
    monkeypatch.setattr(setup_checks, 'print_log', lambda message, **kwargs: messages.append(message))

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

    from ipswap_mm.models.det.det_patch_swap import DetPatchSwap
    from ipswap_mm.models.seg.data_preprocessor import BatchAugSegDataPreProcessor
    from ipswap_mm.models.seg.seg_patch_swap import SegPatchSwap
    messages = []
    monkeypatch.setattr(setup_checks, 'print_log', lambda message, **kwargs: messages.append(message))
    swap = dict(DetPatchSwap=DetPatchSwap, SegPatchSwap=SegPatchSwap)[swap_type]()
    if swap_type == 'SegPatchSwap':  # its preprocessor finds the pipeline's padding in the label maps
        model = SimpleNamespace(data_preprocessor=BatchAugSegDataPreProcessor(
            mean=[0, 0, 0], std=[1, 1, 1], batch_augments=[dict(type='SegPatchSwap')]))
    else:
        model = SimpleNamespace(data_preprocessor=torch.nn.ModuleList([swap]))
    steps = [RandomFlip(prob=0.5)] + ([Pad(size=(64, 64), pad_val=dict(img=(114, 114, 114)))] if pads else [])
    dataset = SimpleNamespace(dataset=SimpleNamespace(pipeline=Compose(steps)))  # inside a wrapper
    setup_checks.warn_pipeline_padding(model, dataset)
    assert len(messages) == warns
    if warns:
        assert 'pads (Pad' in messages[0] and 'DetPatchSwap' in messages[0]


def test_a_loop_of_neither_stock_type_gets_a_finite_sampler(monkeypatch):
    """A custom train loop: epochs must end unless it is MMEngine's iteration-based one."""
    loader = pair_loader(monkeypatch=monkeypatch)
    set_sampler_infinite(SimpleNamespace(dataloader=loader))
    assert loader.sampler.infinite is False


def test_a_finite_sampler_records_no_pair_stream(monkeypatch):
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    loop.dataloader.sampler.infinite = False  # set so in the config
    assert pair_stream_meta(loop, (0, 0, 0)) is None


def test_a_second_resume_after_a_resume_on_another_layout(monkeypatch):
    """Trained 3 iterations of 1 pair, resumed with 2 pairs a step (start (0, 3, 3)), saved at
    iteration 5, resumed again with 2 pairs a step: 3 + 2 * 2 = 7 pairs trained, so the
    pairs go on at pair 3 of epoch 1 (4 pairs an epoch); MMEngine's 5 skips load nothing."""
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=5)
    saved = dict(epoch=0, pair=3, iter=3, world_size=1, pairs_per_iter=2)
    assert follow_resumed_layout(loop, saved) == (1, 3, 5)
    assert [next(loop.dataloader_iterator) for _ in range(5)] == [None] * 5
    pairs = [loop.dataloader.sampler.epoch_pairs(epoch).reshape(-1).tolist() for epoch in (1, 2)]
    assert next(loop.dataloader_iterator).tolist() == pairs[0][6:] + pairs[1][:2]


def test_a_finite_sampler_is_left_to_mmengines_skip(monkeypatch):
    loop = resumed_loop(monkeypatch, batch_size=4, iteration=3)
    loop.dataloader.sampler.infinite = False
    iterator = loop.dataloader_iterator
    saved = dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1)
    assert follow_resumed_layout(loop, saved) == (0, 0, 0) and loop.dataloader_iterator is iterator


def test_an_iterator_whose_workers_drew_indices_is_built_again(monkeypatch):
    """With workers, the loop's iterator has drawn indices already: the resumed position
    needs a new one."""
    monkeypatch.setattr(pair_sampler, 'get_dist_info', lambda: (0, 1))
    monkeypatch.setattr(class_index, 'get_dist_info', lambda: (0, 1))
    loader = DataLoader(Indices(), batch_size=4, num_workers=1,
                        sampler=IntraClassPairSampler(Indices(), seed=0, infinite=True))
    loop = loop_of(IterBasedTrainLoop, loader)
    loop._iter = 3
    loop.dataloader_iterator = loops._InfiniteDataloaderIterator(loader)
    assert follow_resumed_layout(loop, dict(epoch=0, pair=0, iter=0, world_size=1, pairs_per_iter=1)) == (0, 3, 3)
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [None] * 3
    pairs = [loader.sampler.epoch_pairs(epoch).reshape(-1).tolist() for epoch in (0, 1)]
    assert next(loop.dataloader_iterator).tolist() == pairs[0][6:] + pairs[1][:2]


def test_a_preprocessor_without_normalisation_is_not_checked():
    from mmseg.models import SegDataPreProcessor
    check_normalisation(SegDataPreProcessor())  # no mean / std: nothing to check


def note_for(std, images):
    swap = SimpleNamespace(inputs_integer=None)
    pre = SimpleNamespace(_enable_normalize=True, mean=torch.zeros(3, 1, 1), std=torch.full((3, 1, 1), std))
    note_integer_inputs([swap], pre)(pre, (dict(inputs=images),), {})
    return swap.inputs_integer


def test_the_integer_range_checked_is_the_dtypes():
    # 255 / 1e-37 overflows float32, 1 / 1e-37 does not
    assert note_for(1e-37, [torch.zeros(3, 4, 4, dtype=torch.uint8)]) is False
    assert note_for(1e-37, [torch.zeros(3, 4, 4, dtype=torch.bool)]) is True


def test_complex_images_are_not_integer_images():
    assert note_for(1.0, [torch.zeros(3, 4, 4, dtype=torch.complex64)]) is False


def test_a_tuple_of_integer_images_is_integer():
    assert note_for(1.0, (torch.zeros(3, 4, 4, dtype=torch.uint8),) * 2) is True
