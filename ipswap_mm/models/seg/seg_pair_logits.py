"""Per-pixel logits and labels of a segmentor's training forward, for the pair KL."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SegPairLogits:
    """Capture the decode head's class logits during training and pair them with labels.

    A forward hook on the decode head's final classifier (``conv_seg``, which every
    ``BaseDecodeHead`` applies in ``cls_seg``) records its output ``(2P, C, h, w)`` at the
    head's own resolution. The swapped ``gt_sem_seg`` maps are reduced to ``(h, w)`` by
    nearest-neighbour sampling, so the KL never touches full-resolution logits.
    With a cascade of decode heads, the last one is used; auxiliary heads are not.
    """

    use_sigmoid = False

    def __init__(self, segmentor: nn.Module) -> None:
        head = segmentor.decode_head
        if isinstance(head, nn.ModuleList):
            head = head[-1]
        classifier = getattr(head, 'conv_seg', None)
        if not isinstance(classifier, nn.Module):
            raise TypeError(f'IPSDistillHook: decode head {type(head).__name__} has no conv_seg classifier; '
                            'only heads built on mmseg BaseDecodeHead are supported')
        if getattr(head, 'out_channels', head.num_classes) != head.num_classes:
            raise TypeError(f'IPSDistillHook: decode head {type(head).__name__} predicts '
                            f'{head.out_channels} channel(s) for {head.num_classes} classes (binary sigmoid '
                            'output); the pair KL needs one softmax channel per class')
        self.num_classes = int(head.num_classes)
        self._logits = None
        self._handle = classifier.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args, output: Tensor) -> None:
        if module.training:
            self._logits = output

    def __call__(self, data_samples: List) -> Tuple[Tensor, Tensor]:
        """Returns logits ``(2P, C, h*w)`` and labels ``(2P, h*w)`` of the last training forward."""
        logits, self._logits = self._logits, None
        if logits is None:
            raise RuntimeError('IPSDistillHook: the decode head produced no logits in this training step')
        labels = torch.stack([sample.gt_sem_seg.data for sample in data_samples])  # (2P, 1, H, W)
        labels = F.interpolate(labels.float(), size=logits.shape[-2:], mode='nearest').long()
        return logits.flatten(2), labels.flatten(1)

    def remove(self) -> None:
        self._handle.remove()
