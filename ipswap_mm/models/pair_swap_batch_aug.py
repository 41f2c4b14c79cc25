"""Shared part of the registered batch augmentations: pairing checks, randomness, cells."""
from __future__ import annotations

import logging
import math
from typing import List, Sequence

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from ..core.patch_swap import PatchSwap, Ratio, pair_valid_hw
from ..engine.randomness import IterationGenerator

#: Metainfo key of the size inside an image that is not a training pipeline's padding, set by
#: a data preprocessor that can find that padding (``BatchAugSegDataPreProcessor``).
VALID_SHAPE_KEY = 'ips_valid_shape'


class PairSwapBatchAug(nn.Module):
    """Base of ``SegPatchSwap`` and ``DetPatchSwap``: decides which cells every pair swaps.

    The batch must be laid out pair by pair (``IntraClassPairSampler`` does that).
    Randomness comes from a generator seeded by (run seed, iteration, rank, stream), on the host:
    the cells are drawn there and copied to the batch's device once. A subclass's
    ``forward`` calls :meth:`check_pairs` (whole pairs, finite values; tags every sample with
    the metainfo ``ips_pair_index`` that ``IPSDistillHook`` checks), then :meth:`draw_cells`,
    and exchanges the drawn cells with ``self.patch_swap`` (:class:`~ipswap_mm.core.PatchSwap`,
    the one implementation of the swap).

    Args:
        patch_size: Cell side in pixels.
        swap_prob: Probability that a pair is swapped.
        swap_ratio: Fraction of cells a swapped pair exchanges, or a ``(low, high)`` range.
        allow_partial_grid: Accept a batch size that ``patch_size`` does not divide; the
            border strip is then never swapped. ``False``: such a batch is an error (a fixed
            ``size`` already when the data preprocessor is built).
        check_finite: Before swapping, check that the input batch holds no NaN or inf
            (one sum over the batch; on a GPU it waits for the batch);
            if it does, raise a ``ValueError`` naming the images (``img_path``, or the
            batch index) so that the dataset or pipeline that produced them can be fixed,
            instead of swapping the bad values into the partner image and training on a
            NaN loss. A batch whose images came into the data preprocessor as integers
            (``uint8``, as the stock pipelines pack them) of a type whose every value stays
            finite through the preprocessor's ``(x - mean) / std`` cannot hold either:
            ``IPSDistillHook`` marks such batches (``inputs_integer``) and the check, its
            sum and its wait are skipped. ``False`` skips the check always.
    """

    def __init__(self,
                 patch_size: int = 32,
                 swap_prob: float = 0.5,
                 swap_ratio: Ratio = 0.5,
                 allow_partial_grid: bool = False,
                 check_finite: bool = True) -> None:
        super().__init__()
        try:
            self.patch_swap = PatchSwap(patch_size, swap_prob, swap_ratio)
        except ValueError as error:  # named as the config names it
            raise ValueError(f'{type(self).__name__}.{error} (model.data_preprocessor.batch_augments)') from None
        for name, value in (('allow_partial_grid', allow_partial_grid), ('check_finite', check_finite)):
            if not isinstance(value, bool):
                raise ValueError(f'{type(self).__name__}.{name} must be True or False, got {value!r} '
                                 '(model.data_preprocessor.batch_augments)')
        self._warned_no_cells = False
        self._warned_no_pair_loss = False
        # IPSDistillHook.attach sets it; a tool that runs the swap alone on purpose (pictures,
        # timings) sets it to say so, and is not warned that no pair loss is trained
        self.pair_loss_attached = False
        # IPSDistillHook sets it before every call of the data preprocessor: the batch came in
        # as integer images (no NaN or inf can be in it)
        self.inputs_integer = False
        self.allow_partial_grid = allow_partial_grid
        self.check_finite = check_finite
        self.generator = IterationGenerator(type(self).__name__)

    def check_input_size(self, size: Sequence[int], key: str) -> None:
        """Raise, naming ``key``, if an input ``size`` (h, w) is not a whole number of cells
        (unless ``allow_partial_grid``): a fixed size when the preprocessor is built, every
        batch's in :meth:`check_pairs`."""
        patch = self.patch_swap.patch_size
        if not self.allow_partial_grid and (size[0] % patch or size[1] % patch):
            raise ValueError(f'{type(self).__name__}.patch_size={patch} does not divide the input size '
                             f'{tuple(size)} ({key}): choose a patch_size that divides it, or set '
                             'allow_partial_grid=True to leave the border strip unswapped')

    def check_inputs_finite(self, inputs: Tensor, data_samples: Sequence) -> None:
        """Raise, naming the images, if ``inputs`` holds NaN or inf.

        A NaN or inf anywhere makes the sum of the batch NaN or inf, so a finite sum (one
        float32 reduction, several times faster than ``isfinite(inputs).all()``) clears the
        batch; only a non-finite sum (bad values, or an overflow of huge ones) looks closer.
        """
        if math.isfinite(inputs.sum(dtype=torch.float32).item()):
            return
        bad = (~torch.isfinite(inputs)).flatten(1).any(1).nonzero().flatten().tolist()
        if not bad:  # the sum overflowed, no value is bad
            return
        names = []
        for index in bad:
            path = data_samples[index].metainfo.get('img_path') if index < len(data_samples) else None
            names.append(f'{path} (batch index {index})' if path else f'batch index {index}')
        raise ValueError(f'{type(self).__name__}: the input batch holds NaN or inf values in {len(bad)} of '
                         f'{inputs.shape[0]} images: {", ".join(names)}. The dataset or data pipeline produced '
                         'them (a corrupt or non-image file, a transform dividing by zero, a 0 in '
                         'model.data_preprocessor.std): fix the data or the pipeline; swapping would spread '
                         'them to the partner image and make the loss NaN')

    def check_map_sizes(self, maps: Sequence[Tensor], key: str, image_size: Sequence[int], fix: str) -> None:
        """Raise, naming ``key`` and ``fix``, unless every map is ``image_size`` (h, w) like the images."""
        sizes = {tuple(pixel_map.shape[-2:]) for pixel_map in maps}
        if sizes != {tuple(image_size)}:
            raise ValueError(f'{key} is {sorted(sizes)} but the images are {tuple(image_size)}: {fix}')

    def check_pairs(self, inputs: Tensor, data_samples: Sequence) -> None:
        """Check the batch ``(2P, C, H, W)`` before anything is drawn, and tag its samples.

        Raises unless the batch holds whole pairs, is a whole number of cells (unless
        ``allow_partial_grid``) and, with ``check_finite`` (unless ``inputs_integer``), holds
        finite values.
        Warns once when no ``IPSDistillHook`` is attached (the swap then trains no pair loss,
        and nothing checks that the batches are same-class pairs), and once when no cell can
        be swapped (the batch is smaller than a cell, or ``swap_ratio`` of its cells rounds
        to none). Writes the metainfo ``ips_pair_index`` (``i // 2`` for sample ``i``) that
        ``IPSDistillHook`` checks.
        """
        num_items = inputs.shape[0]
        if num_items % 2:
            raise ValueError(f'{type(self).__name__} needs whole pairs but got a batch of {num_items}: '
                             'set an even train_dataloader.batch_size and '
                             "train_dataloader.sampler=dict(type='IntraClassPairSampler')")
        if self.check_finite and not self.inputs_integer:
            self.check_inputs_finite(inputs, data_samples)
        name = type(self).__name__
        if not self.pair_loss_attached and not self._warned_no_pair_loss:
            self._warned_no_pair_loss = True
            print_log(f'{name} swaps patches but no IPSDistillHook is attached: no pair loss (loss_ips_kl) is '
                      'trained, and nothing checks that the batches hold same-class pairs. Add '
                      "custom_hooks=[dict(type='IPSDistillHook')] (a config that sets custom_hooks replaces "
                      "its base's list)", logger='current', level=logging.WARNING)
        height, width = inputs.shape[-2:]
        self.check_input_size((height, width), 'this batch; model.data_preprocessor.size or size_divisor')
        patch = self.patch_swap.patch_size
        grid_h, grid_w = self.patch_swap.grid_shape(height, width)
        most = round(self.patch_swap.swap_ratio[1] * grid_h * grid_w)
        if most == 0 and self.patch_swap.swap_prob > 0 and not self._warned_no_cells:
            self._warned_no_cells = True
            print_log(f'{name}: a {height}x{width} batch holds {grid_h}x{grid_w} cells of patch_size={patch}, and '
                      f'swap_ratio={self.patch_swap.swap_ratio[1]} of them rounds to no cell: nothing is swapped in '
                      'a batch of this size (warned once). Choose a smaller patch_size or a larger swap_ratio '
                      '(model.data_preprocessor.batch_augments)', logger='current', level=logging.WARNING)
        for index, sample in enumerate(data_samples):
            sample.set_metainfo(dict(ips_pair_index=index // 2))

    def draw_cells(self, data_samples: Sequence, height: int, width: int) -> Tensor:
        """Cells ``(P, Gh, Gw)`` every pair of a ``height x width`` batch exchanges, drawn on
        the host (a CPU tensor) from this iteration's generator.

        A few hundred booleans: on a GPU, drawing them there would launch about ten small
        kernels and build a CUDA generator every step, where the host needs no kernel and
        the caller copies the result once (:func:`~ipswap_mm.core.device.to_device`). The
        same seed and iteration give the same cells whatever the batch's device. Reads each
        sample's metainfo ``ips_valid_shape`` (the pipeline's padding, where it is known),
        else ``img_shape``: cells outside either image of a pair are never drawn.
        """
        image_hw = [tuple(meta.get(VALID_SHAPE_KEY) or meta.get('img_shape', (height, width)))[:2]
                    for meta in (sample.metainfo for sample in data_samples)]
        valid = pair_valid_hw(image_hw)
        valid_hw = None
        if any(hw != (height, width) for hw in valid):
            valid_hw = torch.tensor(valid, dtype=torch.long)
        return self.patch_swap.sample_cells(len(data_samples) // 2, height, width, self.generator(), valid_hw)

    def batch_has(self, items: Sequence, key: str, where: str = 'data samples of the batch') -> bool:
        """Whether every one of ``items`` (data samples, or their instances) holds ``key``;
        ``False`` when none does. Raises, naming ``key``, when only some do: the swap moves a
        pixel map or an annotation for the whole batch or not at all, and deciding on the
        first item would leave the others' labels behind their pixels or drop them."""
        present = sum(key in item for item in items)
        if 0 < present < len(items):
            raise ValueError(f'{type(self).__name__}: {present} of {len(items)} {where} hold '
                             f'{key!r} and the others do not. Every sample of a batch must carry the same '
                             'annotations: give the training pipelines of joined datasets the same '
                             'LoadAnnotations and Pack*Inputs')
        return present > 0

    @staticmethod
    def swapping_pairs(cells: Tensor) -> list:
        """Indices of the pairs that exchange at least one cell, from the host cells ``(P, Gh, Gw)``
        of :meth:`draw_cells` (on the host: no sync). Empty: the batch comes back as it came."""
        return [pair for pair, changed in enumerate(cells.any(dim=(1, 2)).tolist()) if changed]

    def extra_repr(self) -> str:
        return repr(self.patch_swap)


def swaps_of(model: nn.Module) -> List[PairSwapBatchAug]:
    """The patch swaps (``SegPatchSwap``, ``DetPatchSwap``) among ``model.data_preprocessor``'s
    modules (its ``batch_augments``), in module order; ``[]`` without a data preprocessor."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    return [] if preprocessor is None else [m for m in preprocessor.modules() if isinstance(m, PairSwapBatchAug)]
