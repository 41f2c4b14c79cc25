"""``IPSDistillHook``: adds the pair KL to the training loss of an unchanged model."""
from __future__ import annotations

import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, MODELS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch import nn
from torch.utils.data import BatchSampler

from ..datasets.pair_sampler import IntraClassPairSampler
from ..models.loss_forward import loss_call_samples
from ..models.pair_swap_batch_aug import PairSwapBatchAug
from .checkpoint_safety import make_weights_only_safe, restore_history_buffers
from .config_walk import pipeline_transforms


def build_pair_logits(model: nn.Module):
    """The object that extracts per-element logits and labels from ``model``'s training step."""
    if hasattr(model, 'decode_head'):
        from ..models.seg.seg_pair_logits import SegPairLogits
        return SegPairLogits(model)
    from ..models.det.query_pair_logits import QueryPairLogits, query_head
    if query_head(model) is not None:
        return QueryPairLogits(model)
    if getattr(model, 'roi_head', None) is not None:
        from ..models.det.det_pair_logits import RoIPairLogits
        return RoIPairLogits(model)
    if getattr(model, 'bbox_head', None) is not None:
        from ..models.det.det_pair_logits import DensePairLogits
        return DensePairLogits(model)
    raise TypeError(f'IPSDistillHook does not support the model type {type(model).__name__}: expected an '
                    'MMSegmentation EncoderDecoder or an MMDetection two-stage, single-stage or DETR-style detector')


@HOOKS.register_module()
class IPSDistillHook(Hook):
    """Intra-class patch swap self-distillation, switched on from the config.

    Before training it checks the rest of the IPS setup (pair sampler, even batch size,
    a swap in ``model.data_preprocessor.batch_augments``) and raises naming the key to
    fix, sets the pair sampler's ``infinite`` for the train loop (see
    :func:`set_sampler_infinite`) and, after a resume, its seed (see
    :func:`follow_resumed_seed`). It then registers PyTorch forward hooks on the model:
    one records the class logits of the training forward, one adds ``loss(logits,
    labels)`` to the loss dict under ``loss.loss_name`` (``'loss_ips_kl'``). The model's
    class, parameters and ``state_dict`` are untouched, so checkpoints load into the
    baseline config; the hooks are removed after training. Checkpoints are saved so that
    ``torch.load(weights_only=True)`` reads them (see ``checkpoint_safety``).

    Args:
        loss: Config of the pair loss, ``PairKLDivLoss`` by default.
        warmup_iters: Ramp the pair loss in linearly over this many training iterations:
            at iteration ``i`` (0-based) it is scaled by ``min(1, (i + 1) / warmup_iters)``,
            and the logged ``loss_ips_kl`` is the scaled value. ``0`` (default) applies the
            full weight from the first iteration. Our option; the paper does not describe one.
    """

    priority = 'NORMAL'

    def __init__(self, loss: Optional[dict] = None, warmup_iters: int = 0) -> None:
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError('IPSDistillHook warmup_iters (custom_hooks) must be an integer >= 0, '
                             f'got {warmup_iters!r}')
        self.loss_cfg = dict(type='PairKLDivLoss') if loss is None else dict(loss)
        self.warmup_iters = warmup_iters
        # built with the hook, so that a bad loss option fails before the dataset scan and the weights
        self.loss: nn.Module = MODELS.build(self.loss_cfg)
        self._pair_logits = None
        self._handle = None
        self._swaps: list = []
        self._scale = 1.0
        self._seed_at_build: Optional[int] = None

    def before_run(self, runner) -> None:
        # the seed the runner built the train dataloader (and the pair sampler) with; a resume changes it after
        self._seed_at_build = runner.seed

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_pair_dataloader(runner.train_dataloader)
        set_sampler_infinite(runner.train_loop)
        follow_resumed_seed(runner.train_loop, self._seed_at_build, runner.seed)
        check_swap_configured(model)
        check_sampler_ignore_index(model, pair_sampler_of(runner.train_dataloader))
        follow_generate_edge(model, runner.train_dataloader.dataset)
        warn_pipeline_padding(model, runner.train_dataloader.dataset)
        self.attach(model)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._scale = self.warmup_scale(runner.iter)

    def warmup_scale(self, iteration: int) -> float:
        """Factor of the pair loss at training iteration ``iteration`` (0-based)."""
        if self.warmup_iters == 0:
            return 1.0
        return min(1.0, (iteration + 1) / self.warmup_iters)

    def after_train(self, runner) -> None:
        self.detach()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        make_weights_only_safe(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        restore_history_buffers(checkpoint)

    def attach(self, model: nn.Module) -> None:
        """Start adding the pair loss to ``model``'s training losses. Checks only that the
        loss's ``use_sigmoid`` agrees with the model's classifier, not the rest of the setup."""
        self.detach()
        pair_logits = build_pair_logits(model)
        try:
            self.loss.check_scoring(pair_logits.use_sigmoid)
        except ValueError:
            pair_logits.remove()
            raise
        self._pair_logits = pair_logits
        self._handle = model.register_forward_hook(self._add_pair_loss, with_kwargs=True)
        self._swaps = [m for m in model.data_preprocessor.modules() if isinstance(m, PairSwapBatchAug)]
        for swap in self._swaps:
            swap.pair_loss_attached = True

    def detach(self) -> None:
        """Remove every hook :meth:`attach` registered."""
        if self._handle is not None:
            self._handle.remove()
            self._pair_logits.remove()
            self._handle = self._pair_logits = None
            for swap in self._swaps:
                swap.pair_loss_attached = False
            self._swaps = []

    def _add_pair_loss(self, model: nn.Module, args: tuple, kwargs: dict, output):
        data_samples = loss_call_samples(model, args, kwargs)
        if data_samples is None:
            return None
        check_pair_layout(data_samples)
        logits, labels = self._pair_logits(data_samples)
        source = self._pair_logits
        loss = self.loss(logits, labels, source.num_classes, source.use_sigmoid)
        output[self.loss.loss_name] = loss if self._scale == 1.0 else loss * self._scale
        return output


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


def follow_resumed_seed(train_loop, seed_at_build: Optional[int], seed: int) -> None:
    """Pair with the resumed run's seed when the sampler took the runner's.

    Without ``randomness.seed`` the runner draws a seed, builds the sampler with it, and a
    resume then restores the checkpoint's seed (the swaps follow it by themselves); here the
    pairs follow it too, so that a resumed run pairs as the run it continues. An
    iteration-based loop's dataloader iterator exists already (its workers may have drawn
    indices), so it is built again. A seed given to the sampler itself is left alone.
    """
    sampler = pair_sampler_of(train_loop.dataloader)
    if seed_at_build is None or seed == seed_at_build or sampler.seed != seed_at_build:
        return
    sampler.seed = seed
    iterator = getattr(train_loop, 'dataloader_iterator', None)
    if iterator is not None:
        train_loop.dataloader_iterator = type(iterator)(train_loop.dataloader)


def check_swap_configured(model: nn.Module) -> None:
    """Raise unless the model's data preprocessor runs a patch swap."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is None or not any(isinstance(m, PairSwapBatchAug) for m in preprocessor.modules()):
        raise ValueError('IPSDistillHook is on but no patch swap runs: add dict(type=\'SegPatchSwap\') '
                         "(MMSegmentation, with model.data_preprocessor.type='BatchAugSegDataPreProcessor') or "
                         "dict(type='DetPatchSwap') (MMDetection) to model.data_preprocessor.batch_augments")


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
    swaps = [module for module in model.data_preprocessor.modules() if hasattr(module, 'edge_width')]
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
    swaps = [m for m in model.data_preprocessor.modules() if isinstance(m, PairSwapBatchAug)]
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
