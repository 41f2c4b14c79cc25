"""Per-cell logits and class pixel counts of a segmentor's training forward, for the pair KL."""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from ...core.cell_counts import cell_class_counts
from ..method_wrap import unwrap_method, wrap_method
from ..pair_logits import TrainingOutput


def distilled_head(segmentor: nn.Module) -> nn.Module:
    """The decode head whose logits the pair KL compares: the last of a cascade's
    (``CascadeEncoderDecoder``) that has a ``conv_seg`` classifier, else the last."""
    heads = segmentor.decode_head
    heads = list(heads) if isinstance(heads, nn.ModuleList) else [heads]
    dense = [head for head in heads if isinstance(getattr(head, 'conv_seg', None), nn.Module)]
    return dense[-1] if dense else heads[-1]


class SegPairLogits:
    """Capture the decode head's class logits during training and pair them with labels.

    A forward hook records the head's class logits ``(2P, C, h, w)`` at the head's own
    resolution: the output of its final classifier (``conv_seg``, which every
    ``BaseDecodeHead`` applies in ``cls_seg``), or, for heads without one, the head's own
    output (:func:`head_output_logits`: Segmenter's mask transformer, K-Net's last stage,
    MaskFormer and Mask2Former through their semantic inference). The swapped ``gt_sem_seg``
    maps become per-cell class pixel counts (:func:`cell_class_counts`), so the class means
    cover every labelled pixel and the KL never touches full-resolution logits.
    With a cascade of decode heads, the last one with a ``conv_seg`` is used (OCRNet's OCR
    head, PointRend's FPN head: its point head classifies sampled points, not a map);
    auxiliary heads are not.
    """

    use_sigmoid = False

    def __init__(self, segmentor: nn.Module) -> None:
        head = distilled_head(segmentor)
        dense = isinstance(getattr(head, 'conv_seg', None), nn.Module)
        if getattr(head, 'out_channels', head.num_classes) != head.num_classes:
            raise TypeError(f'IPSDistillHook: decode head {type(head).__name__} predicts '
                            f'{head.out_channels} channel(s) for {head.num_classes} classes (binary sigmoid '
                            'output); the pair KL needs one softmax channel per class')
        self.num_classes = int(head.num_classes)
        # the label the head's losses ignore; one inside [0, K) (e.g. 0 for 'unlabelled') must be
        # dropped here too, labels outside it count for no class anyway
        ignore_index = getattr(head, 'ignore_index', None)
        self.ignore_index = int(ignore_index) if ignore_index is not None and 0 <= ignore_index < self.num_classes \
            else None
        self.head_name = type(head).__name__
        self._head, self._dense = head, dense
        self._logits = TrainingOutput(head.conv_seg if dense else None)
        if not dense:  # an instance attribute, not a hook: K-Net's loss calls self.forward, which skips hooks
            self._forward_of_head = wrap_method(head, 'forward', self._forward)

    def _forward(self, *args, **kwargs):
        """The head's ``forward``; in training, its class logits are kept."""
        output = self._forward_of_head(*args, **kwargs)
        if self._head.training:
            self._logits.keep(head_output_logits(output, self.num_classes, self.head_name))
        return output

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """Logits ``(2P, C, h*w)`` of the last training forward and the class weights
        ``(2P, h*w, K)`` of their cells (see :func:`cell_class_counts`)."""
        logits = self._logits.take('the decode head produced no logits')
        labels = torch.cat([sample.gt_sem_seg.data for sample in data_samples])  # (2P, H, W)
        if self.ignore_index is not None:
            labels = labels.masked_fill(labels == self.ignore_index, -1)
        weights = cell_class_counts(labels, logits.shape[-2:], self.num_classes)
        return logits.flatten(2), weights

    def remove(self) -> None:
        self._logits.remove()
        if not self._dense:
            unwrap_method(self._head, 'forward', self._forward)


def head_output_logits(output, num_classes: int, head_name: str) -> Tensor:
    """``(N, C, h, w)`` class logits from the training output of a decode head without ``conv_seg``.

    * a ``(N, C, h, w)`` tensor (Segmenter's mask transformer): as it is;
    * a list of such tensors, one per refinement stage (K-Net): the last;
    * ``(class scores, mask predictions)``, over decoder layers (lists, or stacked tensors) of
      ``(N, Q, C + 1)`` and ``(N, Q, h, w)`` (Mask2Former, MaskFormer): the log of the per-pixel
      class distribution of the last layer, as their semantic inference computes it (``softmax``
      over ``C + 1`` without the no-object class, times the masks' sigmoids, summed over the
      queries), normalised over C.
    """
    last = [part[-1] if isinstance(part, (Tensor, list, tuple)) and len(part) else None
            for part in output] if isinstance(output, (tuple, list)) and len(output) == 2 else []
    if (all(isinstance(part, Tensor) for part in last) and [part.dim() for part in last] == [3, 4]
            and last[0].shape[-1] == num_classes + 1):
        scores, masks = last  # the last decoder layer's, from lists over layers or stacked (MaskFormer)
        # In float32 whatever the head's dtype: in float16 (AMP) small products flush to zero and
        # the floor below would be float16's tiny, 6e-5, a bias on every rare class.
        with torch.autocast(masks.device.type, enabled=False):
            probs = torch.einsum('nqc,nqhw->nchw', scores.float().softmax(-1)[..., :-1], masks.float().sigmoid())
        tiny = torch.finfo(probs.dtype).tiny
        return (probs / probs.sum(1, keepdim=True).clamp(min=tiny)).clamp(min=tiny).log()
    if isinstance(output, (tuple, list)) and output and all(isinstance(part, Tensor) for part in output):
        output = output[-1]
    if isinstance(output, Tensor) and output.dim() == 4 and output.shape[1] == num_classes:
        return output
    shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
    raise TypeError(f'IPSDistillHook: decode head {head_name} has no conv_seg classifier and its training '
                    f'output ({shape}) is not a (N, {num_classes}, h, w) class map, a list of them, or '
                    'MaskFormer-style (class scores, mask predictions); the pair KL cannot read its classes')
