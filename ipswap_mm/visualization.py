"""Pictures of what the swap did: each pair before and after, with its labels.

``save_seg_pairs_figure`` shows label maps next to the images; ``save_det_pairs_figure``
draws boxes and instance masks over them. Both take the normalised batch the data
preprocessor produced and undo the normalisation.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

# (x, y, text, RGB colour in [0, 1], vertical alignment) written over a panel, in its pixel coordinates
Caption = Tuple[float, float, str, Tuple[float, float, float], str]
CAPTION_ROOM = 10  # pixels above a box a caption needs; boxes nearer the top edge get it inside


def _image(tensor: Tensor, mean: Tensor, std: Tensor) -> np.ndarray:
    image = tensor.detach().cpu().float() * std.cpu() + mean.cpu()
    return image.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def _labels(tensor: Tensor, palette: np.ndarray) -> np.ndarray:
    return palette[tensor.detach().cpu().long().squeeze(0).clamp(0, 255).numpy()]


def _normalisation(mean: Sequence[float], std: Sequence[float]) -> Tuple[Tensor, Tensor]:
    return (torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1),
            torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1))


def _save_grid(path: str, rows: List[List[np.ndarray]], titles: Sequence[str], suptitle: str,
               panel_inches: Tuple[float, float], captions: Optional[List[List[List[Caption]]]] = None) -> str:
    """Save ``rows`` of ``(H, W, 3)`` uint8 panels as one PNG, column titles on the first row.

    ``captions[row][column]`` lists texts written over that panel.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = len(titles)
    figure, axes = plt.subplots(len(rows), columns, squeeze=False,
                                figsize=(panel_inches[0] * columns, panel_inches[1] * len(rows) + 0.8))
    for row, panels in enumerate(rows):
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(titles[column], fontsize=9)
            for x, y, text, colour, va in (captions[row][column] if captions else []):
                axis.text(x, y, text, fontsize=8, color='white', va=va, clip_on=True,
                          bbox=dict(facecolor=colour, edgecolor='none', pad=1, alpha=0.8))
    figure.suptitle(suptitle)
    figure.tight_layout(h_pad=1.5)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def save_seg_pairs_figure(path: str, before: Tensor, before_labels: Tensor, after: Tensor,
                          after_labels: Tensor, mean: Sequence[float], std: Sequence[float],
                          palette: Sequence[int], num_pairs: int = 3) -> str:
    """Save a grid: one row per pair, ``a | b | a labels | b labels`` before and after the swap.

    Args:
        path: Where the PNG goes (returned).
        before, after: ``(2P, 3, H, W)`` normalised RGB batches.
        before_labels, after_labels: ``(2P, 1, H, W)`` class maps (255 = ignore).
        mean, std: The normalisation to undo.
        palette: Flattened RGB palette, 256 entries.
        num_pairs: Most pairs (rows) shown.
    """
    mean_t, std_t = _normalisation(mean, std)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    rows = []
    for pair in range(min(num_pairs, before.shape[0] // 2)):
        a, b = 2 * pair, 2 * pair + 1
        rows.append([_image(before[a], mean_t, std_t), _image(before[b], mean_t, std_t),
                     _labels(before_labels[a], colours), _labels(before_labels[b], colours),
                     _image(after[a], mean_t, std_t), _image(after[b], mean_t, std_t),
                     _labels(after_labels[a], colours), _labels(after_labels[b], colours)])
    titles = ['a', 'b', 'a labels', 'b labels', 'a swapped', 'b swapped', 'a labels swapped', 'b labels swapped']
    return _save_grid(path, rows, titles,
                      'Intra-class patch swap: pairs before (left) and after (right); labels travel with pixels',
                      panel_inches=(2.0, 2.4))


# matplotlib's tab10 colours
TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
         (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def label_colour(index: int) -> np.ndarray:
    """RGB colour (uint8) number ``index``: matplotlib's ``tab10``, cycled."""
    return np.asarray(TAB10[int(index) % len(TAB10)], dtype=np.uint8)


def instance_masks_array(masks, height: int, width: int) -> np.ndarray:
    """Instance masks -> ``(n, height, width)`` bool array, cropped or zero-padded.

    Accepts MMDetection's ``BitmapMasks`` / ``PolygonMasks`` (anything with
    ``to_ndarray()``), a tensor or an array of shape ``(n, h, w)``.
    """
    if hasattr(masks, 'to_ndarray'):
        array = masks.to_ndarray()
    elif isinstance(masks, Tensor):
        array = masks.detach().cpu().numpy()
    else:
        array = np.asarray(masks)
    array = array[:, :height, :width].astype(bool)
    return np.pad(array, ((0, 0), (0, height - array.shape[1]), (0, width - array.shape[2])))


def draw_instances(image: np.ndarray, bboxes, labels, masks=None,
                   colours: Optional[Mapping[int, Sequence[int]]] = None, alpha: float = 0.45) -> np.ndarray:
    """Return a copy of ``image`` with every object's mask tinted and box outlined in its class colour.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        bboxes: ``(n, 4)`` ``x1, y1, x2, y2`` in pixel edges (tensor, array or MMDetection boxes);
            the outline is the one-pixel ring just inside the box, clipped to the image.
        labels: ``(n,)`` class ids.
        masks: Optional instance masks, see :func:`instance_masks_array`.
        colours: RGB colour of each class id; by default :func:`label_colour` of the id.
        alpha: Opacity of the mask tint.
    """
    canvas = image.astype(np.float32)
    height, width = image.shape[:2]
    boxes = _as_numpy(bboxes).reshape(-1, 4)
    labels = _as_numpy(labels).reshape(-1).astype(int)
    palette = [np.asarray(colours[label] if colours is not None else label_colour(label), np.uint8)
               for label in labels]
    if masks is not None:
        for mask, colour in zip(instance_masks_array(masks, height, width), palette):
            canvas[mask] = (1 - alpha) * canvas[mask] + alpha * colour
    canvas = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes, palette):
        left, top = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        right, bottom = min(int(np.ceil(x2)) - 1, width - 1), min(int(np.ceil(y2)) - 1, height - 1)
        if right < left or bottom < top:
            continue
        canvas[top:bottom + 1, [left, right]] = colour
        canvas[[top, bottom], left:right + 1] = colour
    return canvas


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, 'tensor'):  # MMDetection box types
        values = values.tensor
    if isinstance(values, Tensor):
        return values.detach().cpu().float().numpy()
    return np.asarray(values, dtype=np.float32)


def _det_panel(inputs: Tensor, instances, mean: Tensor, std: Tensor, colours: Dict[int, np.ndarray],
               class_names: Sequence[str]) -> Tuple[np.ndarray, List[Caption]]:
    """One image with its objects drawn, and the class names to write at their boxes."""
    masks = instances.masks if 'masks' in instances else None
    panel = draw_instances(_image(inputs, mean, std), instances.bboxes, instances.labels, masks, colours)
    captions = []
    for (x1, y1, _, _), label in zip(_as_numpy(instances.bboxes).reshape(-1, 4),
                                     _as_numpy(instances.labels).astype(int)):
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        inside = y1 < CAPTION_ROOM
        captions.append((float(x1), float(y1), name, tuple(colours[label] / 255.0), 'top' if inside else 'bottom'))
    return panel, captions


def save_det_pairs_figure(path: str, before_inputs: Tensor, before_samples: Sequence, after_inputs: Tensor,
                          after_samples: Sequence, mean: Sequence[float], std: Sequence[float],
                          class_names: Sequence[str] = (), num_pairs: int = 3) -> str:
    """Save a grid: one row per pair, ``a | b`` before and after the swap, objects drawn over them.

    Every object's mask is tinted and its box outlined in its class colour (the classes
    shown get ``tab10`` colours in id order), with its class name at the box's top-left
    corner (above the box, or inside it at the image's top edge).

    Args:
        path: Where the PNG goes (returned).
        before_inputs, after_inputs: ``(2P, 3, H, W)`` normalised RGB batches.
        before_samples, after_samples: The 2P ``DetDataSample`` of each batch;
            ``gt_instances`` with ``bboxes``, ``labels`` and optional ``masks``
            (``BitmapMasks`` or ``PolygonMasks``).
        mean, std: The normalisation to undo.
        class_names: Names of the class ids (ids without a name are written as numbers).
        num_pairs: Most pairs (rows) shown.
    """
    mean_t, std_t = _normalisation(mean, std)
    shown = 2 * min(num_pairs, before_inputs.shape[0] // 2)
    views = [(before_inputs, before_samples), (after_inputs, after_samples)]
    labels = sorted({int(label) for _, samples in views for sample in samples[:shown]
                     for label in _as_numpy(sample.gt_instances.labels).reshape(-1)})
    colours = {label: label_colour(rank) for rank, label in enumerate(labels)}
    rows, captions = [], []
    for first in range(0, shown, 2):
        drawn = [_det_panel(inputs[index], samples[index].gt_instances, mean_t, std_t, colours, class_names)
                 for inputs, samples in views for index in (first, first + 1)]
        rows.append([panel for panel, _ in drawn])
        captions.append([texts for _, texts in drawn])
    height, width = before_inputs.shape[-2:]
    return _save_grid(path, rows, ['a', 'b', 'a swapped', 'b swapped'],
                      'Intra-class patch swap: pairs before (left) and after (right); boxes and masks follow pixels',
                      panel_inches=(3.0, 3.0 * height / width), captions=captions)
