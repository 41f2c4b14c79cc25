from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import DataLoader

from ipswap_mm.engine import setup_checks
from ipswap_mm.engine.setup_checks import (
    check_normalisation,
    check_pair_dataloader,
    check_sampler_ignore_index,
    follow_generate_edge,
    note_integer_inputs,
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
