"""``IPSDistillHook``: adds the pair KL to the training loss of an unchanged model."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, MODELS
from torch import nn

from ..models.loss_forward import loss_call_samples
from ..models.pair_logits import build_pair_logits
from ..models.pair_swap_batch_aug import swaps_of
from .checkpoint_safety import make_weights_only_safe, restore_history_buffers
from .resume import follow_resume, pair_stream_meta
from .setup_checks import (
    check_normalisation,
    check_pair_dataloader,
    check_pair_layout,
    check_sampler_ignore_index,
    check_swap_configured,
    follow_generate_edge,
    note_integer_inputs,
    pair_sampler_of,
    set_sampler_infinite,
    warn_pipeline_padding,
)

#: Checkpoint ``meta`` key of where an iteration-based run's pairs stand (``pair_stream_meta``).
PAIR_STREAM_KEY = 'ips_pair_stream'


@HOOKS.register_module()
class IPSDistillHook(Hook):
    """Intra-class patch swap self-distillation, switched on from the config.

    Before training it checks the rest of the IPS setup (pair sampler, even batch size,
    a swap in ``model.data_preprocessor.batch_augments``) and raises naming the key to
    fix, sets the pair sampler's ``infinite`` for the train loop and, after a resume, its
    seed and, on another layout (processes, batch size), where its pairs go on
    (:mod:`~ipswap_mm.engine.setup_checks`). It then attaches the model's pair-logits
    reader (:mod:`~ipswap_mm.models.pair_logits`: forward hooks, or a wrapped head method
    where a head's training call skips hooks), which records the class logits of the
    training forward, and a forward hook on the model that adds ``loss(logits, labels)``
    to the loss dict under ``loss.loss_name`` (``'loss_ips_kl'``). The model's class,
    parameters and ``state_dict`` are untouched, so checkpoints load into the baseline
    config; everything attached is removed after training. Checkpoints are saved so that
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
        self._handle = self._input_handle = None
        self._swaps: list = []
        self._scale = 1.0
        self._seed_at_build: Optional[int] = None
        self._saved_pair_stream: Optional[dict] = None  # a resumed checkpoint's (pair_stream_meta)
        self._pair_stream_start = (0, 0, 0)  # epoch, pair, iteration this run's pairs started at

    def before_run(self, runner) -> None:
        # the seed the runner built the train dataloader (and the pair sampler) with; a resume changes it after
        self._seed_at_build = runner.seed

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_pair_dataloader(runner.train_dataloader)
        set_sampler_infinite(runner.train_loop)
        self._pair_stream_start = follow_resume(runner.train_loop, self._seed_at_build, runner.seed,
                                                self._saved_pair_stream)
        check_swap_configured(model)
        check_normalisation(model.data_preprocessor)
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
        stream = pair_stream_meta(getattr(runner, '_train_loop', None), self._pair_stream_start)
        if stream is not None:
            checkpoint.setdefault('meta', {})[PAIR_STREAM_KEY] = stream

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        restore_history_buffers(checkpoint)
        self._saved_pair_stream = checkpoint.get('meta', {}).get(PAIR_STREAM_KEY)

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
        self._swaps = swaps_of(model)
        self._input_handle = model.data_preprocessor.register_forward_pre_hook(
            note_integer_inputs(self._swaps, model.data_preprocessor), with_kwargs=True)
        for swap in self._swaps:
            swap.pair_loss_attached = True

    def detach(self) -> None:
        """Remove every hook :meth:`attach` registered."""
        if self._handle is not None:
            self._handle.remove()
            self._input_handle.remove()
            self._pair_logits.remove()
            self._handle = self._input_handle = self._pair_logits = None
            for swap in self._swaps:
                swap.pair_loss_attached = swap.inputs_integer = False
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


def ips_hook_of(custom_hooks) -> IPSDistillHook:
    """The ``IPSDistillHook`` a config's ``custom_hooks`` list configures, built as the runner
    builds it (a ``priority`` key is the runner's, not the hook's); raises ``ValueError``
    naming the key when the list has none."""
    entries = [dict(hook) for hook in custom_hooks or [] if hook.get('type') in ('IPSDistillHook', IPSDistillHook)]
    if not entries:
        raise ValueError("custom_hooks holds no dict(type='IPSDistillHook')")
    entries[0].pop('priority', None)
    return HOOKS.build(entries[0])
