"""Pictures of what the swap did: each pair before and after, with its label maps."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def _image(tensor: Tensor, mean: Tensor, std: Tensor) -> np.ndarray:
    image = tensor.detach().cpu().float() * std.cpu() + mean.cpu()
    return image.clamp(0, 255).byte().permute(1, 2, 0).numpy()


def _labels(tensor: Tensor, palette: np.ndarray) -> np.ndarray:
    return palette[tensor.detach().cpu().long().squeeze(0).clamp(0, 255).numpy()]


def save_seg_pairs_figure(path: str, before: Tensor, before_labels: Tensor, after: Tensor,
                          after_labels: Tensor, mean: Sequence[float], std: Sequence[float],
                          palette: Sequence[int], num_pairs: int = 3) -> str:
    """Save a grid: one row per pair, ``a | b | a labels | b labels`` before and after the swap.

    Args:
        before, after: ``(2P, 3, H, W)`` normalised RGB batches.
        before_labels, after_labels: ``(2P, 1, H, W)`` class maps (255 = ignore).
        mean, std: The normalisation to undo.
        palette: Flattened RGB palette, 256 entries.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    rows = min(num_pairs, before.shape[0] // 2)
    titles = ['a', 'b', 'a labels', 'b labels', 'a swapped', 'b swapped', 'a labels swapped', 'b labels swapped']
    figure, axes = plt.subplots(rows, 8, figsize=(16, 2.4 * rows + 0.8), squeeze=False)
    for row in range(rows):
        a, b = 2 * row, 2 * row + 1
        panels = [_image(before[a], mean_t, std_t), _image(before[b], mean_t, std_t),
                  _labels(before_labels[a], colours), _labels(before_labels[b], colours),
                  _image(after[a], mean_t, std_t), _image(after[b], mean_t, std_t),
                  _labels(after_labels[a], colours), _labels(after_labels[b], colours)]
        for column, panel in enumerate(panels):
            axes[row, column].imshow(panel)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(titles[column], fontsize=9)
    figure.suptitle('Intra-class patch swap: pairs before (left) and after (right); labels travel with pixels')
    figure.tight_layout(h_pad=1.5)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
