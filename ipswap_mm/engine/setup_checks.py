"""The checks and settings ``IPSDistillHook`` makes when training starts: that the rest of
the IPS setup is there (pair sampler, even batches, a swap), each failure naming the config
key to fix, and the settings that follow from the train loop and the pipeline."""
from __future__ import annotations

import logging
import math

import torch
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch import Tensor, nn
from torch.utils.data import BatchSampler

from ..datasets.pair_sampler import IntraClassPairSampler
from ..models.pair_swap_batch_aug import swaps_of
from .config_walk import pipeline_transforms


def pair_sampler_of(dataloader):
    """The sampler that draws ``dataloader``'s indices (inside its batch sampler, if any)."""
    return getattr(dataloader.batch_sampler, 'sampler', dataloader.sampler)


def check_pair_dataloader(dataloader) -> None:
    """Raise unless the training batches are whole same-class pairs."""
    batch_sampler = dataloader.batch_sampler
    sampler = pair_sampler_of(dataloader)
    if not isinstance(sampler, IntraClassPairSampler):
        raise ValueError("IPSDistillHook needs train_dataloader.sampler=dict(type='IntraClassPairSampler'), "
                         f'got {type(sampler).__name__}')
    if type(batch_sampler) is not BatchSampler:
        raise ValueError(f'train_dataloader.batch_sampler ({type(batch_sampler).__name__}) may reorder '
                         'the pairs; set train_dataloader.batch_sampler=None')
    if batch_sampler.batch_size % 2:
        raise ValueError(f'train_dataloader.batch_size={batch_sampler.batch_size} is odd: IPS batches '
                         'hold whole pairs, so it must be even')


def set_sampler_infinite(train_loop) -> None:
    """Resolve ``IntraClassPairSampler(infinite=None)`` for ``train_loop``: ``True`` under an
    iteration-based loop, ``False`` otherwise; raise if ``True`` was set for an epoch-based one."""
    sampler = pair_sampler_of(train_loop.dataloader)
    if sampler.infinite is None:
        sampler.infinite = isinstance(train_loop, IterBasedTrainLoop)
    elif sampler.infinite and isinstance(train_loop, EpochBasedTrainLoop):
        raise ValueError('train_dataloader.sampler.infinite=True never ends an epoch of the epoch-based '
                         'train loop (train_cfg); set it to None (the default: chosen for the loop) or False')


def check_swap_configured(model: nn.Module) -> None:
    """Raise unless the model's data preprocessor runs a patch swap."""
    if not swaps_of(model):
        raise ValueError('IPSDistillHook is on but no patch swap runs: add dict(type=\'SegPatchSwap\') '
                         "(MMSegmentation, with model.data_preprocessor.type='BatchAugSegDataPreProcessor') or "
                         "dict(type='DetPatchSwap') (MMDetection) to model.data_preprocessor.batch_augments")


def check_normalisation(preprocessor: nn.Module) -> None:
    """Raise, naming the key, unless the data preprocessor's ``mean`` and ``std`` are finite
    and ``std`` holds no zero: a zero makes every image inf or NaN."""
    if not getattr(preprocessor, '_enable_normalize', False):
        return
    for key in ('mean', 'std'):
        values = getattr(preprocessor, key).flatten().tolist()
        if not all(math.isfinite(value) and (key == 'mean' or value != 0) for value in values):
            raise ValueError(f'model.data_preprocessor.{key}={values}: ' + (
                'std must be finite and non-zero (it divides every pixel)' if key == 'std' else 'mean must be finite'))


def note_integer_inputs(swaps: list, preprocessor: nn.Module):
    """A forward pre-hook for ``preprocessor``: tells the ``swaps`` whether the batch comes
    in as integer images whose every possible value stays finite through the preprocessor's
    normalisation, ``(x - mean) / std`` in float32 (then no NaN or inf can be in it; see
    ``check_finite``). The ``mean`` and ``std`` are read to the host once, here; the range
    check is made once per image dtype."""
    if getattr(preprocessor, '_enable_normalize', False):
        mean, std = (getattr(preprocessor, key).detach().float().flatten().cpu() for key in ('mean', 'std'))
    else:
        mean, std = torch.zeros(1), torch.ones(1)  # integers of every width are finite in float32
    stays_finite = {}

    def finite_range(dtype: torch.dtype) -> bool:
        if dtype not in stays_finite:
            ends = (0, 1) if dtype == torch.bool else (torch.iinfo(dtype).min, torch.iinfo(dtype).max)
            ends = torch.tensor(ends, dtype=torch.float32)[:, None]
            stays_finite[dtype] = bool(torch.isfinite((ends - mean) / std).all())
        return stays_finite[dtype]

    def note(module: nn.Module, args: tuple, kwargs: dict) -> None:
        data = args[0] if args else kwargs.get('data')
        inputs = data.get('inputs') if isinstance(data, dict) else None
        images = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        integer = bool(images) and all(isinstance(image, Tensor) and not image.is_floating_point()
                                       and not image.is_complex() and finite_range(image.dtype) for image in images)
        for swap in swaps:
            swap.inputs_integer = integer
    return note


def check_sampler_ignore_index(model: nn.Module, sampler: IntraClassPairSampler) -> None:
    """Warn when the decode head ignores a label value the pair sampler pairs images on.

    The sampler has its own ``ignore_index`` (255 by default): with a head that ignores
    another value (0, 'unlabelled', in some datasets), images would be paired on a class
    that the task loss and the pair KL both ignore.
    """
    if getattr(model, 'decode_head', None) is None:
        return
    from ..models.seg.seg_pair_logits import distilled_head
    ignore_index = getattr(distilled_head(model), 'ignore_index', None)
    # the sampler never counts a negative value as a class
    if ignore_index is None or int(ignore_index) < 0 or int(ignore_index) in sampler.class_index.excluded:
        return
    print_log(f'IPSDistillHook: model.decode_head.ignore_index={ignore_index} is a class to '
              f'train_dataloader.sampler (whose ignore_index is {sampler.ignore_index}): images may be paired '
              'on pixels the loss ignores. Set train_dataloader.sampler.ignore_index to the head\'s.',
              logger='current', level=logging.WARNING)


def follow_generate_edge(model: nn.Module, dataset) -> None:
    """Give the swap the ``edge_width`` and ``ignore_index`` of the training pipeline's
    ``GenerateEdge`` (PIDNet), with which it draws the edge maps of swapped labels again.

    A swap whose ``edge_width`` is set keeps it, but must agree with the pipeline's.
    """
    settings = {(int(t.edge_width), int(t.ignore_index)) for t in pipeline_transforms(dataset)
                if type(t).__name__ == 'GenerateEdge'}
    swaps = [swap for swap in swaps_of(model) if hasattr(swap, 'edge_width')]  # SegPatchSwap
    if not settings or not swaps:
        return
    if len(settings) > 1:
        raise ValueError(f'the training pipelines run GenerateEdge with different (edge_width, ignore_index): '
                         f'{sorted(settings)}; SegPatchSwap draws the edges of swapped labels with one')
    width, ignore = settings.pop()
    for swap in swaps:
        if swap.edge_width is None:
            swap.edge_width, swap.edge_ignore_index = width, ignore
        elif (swap.edge_width, swap.edge_ignore_index) != (width, ignore):
            raise ValueError(f'SegPatchSwap edge_width={swap.edge_width}, edge_ignore_index='
                             f'{swap.edge_ignore_index} but the training pipeline\'s GenerateEdge has edge_width='
                             f'{width}, ignore_index={ignore}: make them equal, or leave edge_width unset to '
                             'follow the pipeline')


def warn_pipeline_padding(model: nn.Module, dataset) -> None:
    """Warn when the training pipeline pads (``Pad``: YOLOX, RTMDet) and the swap cannot
    keep that padding out (detection: no label map to find it in), so that it is swapped like
    image: a partner's objects move into it, and it replaces the partner's pixels."""
    from mmcv.transforms import Pad
    if getattr(model.data_preprocessor, 'marks_pipeline_padding', False):
        return
    swaps = swaps_of(model)
    pads = [t for t in pipeline_transforms(dataset) if isinstance(t, Pad)]
    if pads:
        print_log(f'IPSDistillHook: the training pipeline pads ({type(pads[0]).__name__}, e.g. to a square) and '
                  f'{type(swaps[0]).__name__} cannot tell that padding from image: it is swapped like image '
                  '(the partner\'s objects in those cells move into it; nothing is lost). See the README, '
                  '"Cells reaching into either image\'s padding".', logger='current', level=logging.WARNING)


def check_pair_layout(data_samples) -> None:
    """Raise unless the batch went through the swap, pair by pair."""
    indices = [sample.metainfo.get('ips_pair_index') for sample in data_samples]
    if indices != [i // 2 for i in range(len(indices))]:
        raise RuntimeError('IPSDistillHook: this training batch was not laid out in pairs by the patch swap '
                           '(missing ips_pair_index metainfo); check model.data_preprocessor.batch_augments')
