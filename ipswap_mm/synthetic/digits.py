"""Scenes of real handwritten digits (scikit-learn's 1,797 ``load_digits`` images) on textured backgrounds.

Every scene is ``size x size`` pixels and holds 2 to 4 digits, each an 8x8 digit image
upscaled to 16-24 pixels, in a colour that contrasts with a textured background
(colour blotches, stripes or a checker pattern, pixel noise). Digits never overlap.

* classes: the digits ``'0'`` .. ``'9'`` (detection labels 0-9); segmentation adds
  ``'background'`` as label 0, so a digit ``d`` is label ``d + 1`` in the label maps;
* a digit's mask is where its upscaled intensity (0-16 in the source image) is at least
  ``MASK_THRESHOLD`` of the maximum; label maps carry the digit's class exactly there;
* boxes are the tight boxes of the masks, polygons the masks' outer contours (``cv2``).

Training and validation scenes draw from disjoint digit images: scikit-learn's images
are split by index (the first ``1 - val_fraction`` for training, the rest for
validation). The same ``seed`` writes the same scenes, and the VOC and the COCO writers
write the same scenes for the same arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import cv2
import numpy as np

from .coco import write_coco_scenes
from .scenes import Scene
from .voc import voc_palette, write_voc_scenes

DIGIT_CLASSES = tuple(str(digit) for digit in range(10))
SEG_CLASSES = ('background', ) + DIGIT_CLASSES
MASK_THRESHOLD = 0.3
DIGIT_SIZE = (16, 24)
DIGITS_PER_SCENE = (2, 4)
SPLIT_STREAMS = {'train': 0, 'val': 1}


@dataclass
class DigitScene(Scene):
    """A :class:`Scene` whose ``labels`` are digits (0-9) and whose ``semantic`` map holds
    ``digit + 1`` (0 is background); ``sources (K,)`` are the indices of the digit images
    in ``sklearn.datasets.load_digits()``."""

    sources: np.ndarray


def load_digit_images() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: ``images (1797, 8, 8) float32`` in ``[0, 1]`` and ``targets (1797,)``."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def digit_split(num_images: int, val_fraction: float = 0.3) -> dict:
    """Disjoint index ranges of the digit images: ``{'train': first part, 'val': the rest}``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    boundary = int(round(num_images * (1 - val_fraction)))
    return dict(train=np.arange(boundary), val=np.arange(boundary, num_images))


def seg_metainfo() -> dict:
    """``metainfo`` for ``BaseSegDataset``: the 11 segmentation classes and their VOC colours."""
    palette = voc_palette()
    return dict(classes=SEG_CLASSES, palette=[palette[3 * i:3 * i + 3] for i in range(len(SEG_CLASSES))])


def det_metainfo() -> dict:
    """``metainfo`` for ``CocoDataset``: the 10 digit classes (category names ``'0'`` .. ``'9'``)."""
    palette = voc_palette()
    return dict(classes=DIGIT_CLASSES, palette=[tuple(palette[3 * i:3 * i + 3]) for i in range(1, 11)])


def _luminance(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def textured_background(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """A float32 ``(H, W, 3)`` background and its base colour: blotches, a periodic pattern, noise."""
    base = rng.uniform(40, 215, size=3)
    grid = int(rng.integers(3, 8))
    blotches = cv2.resize(rng.normal(0, 22, size=(grid, grid, 3)).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period, angle = rng.uniform(4, 14), rng.uniform(0, np.pi)
    phase = 2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period
    if rng.random() < 0.5:  # stripes
        pattern = np.sin(phase)
    else:  # checker
        other = 2 * np.pi * (-xx * np.sin(angle) + yy * np.cos(angle)) / period
        pattern = np.sign(np.sin(phase) * np.sin(other))
    amplitude = rng.uniform(8, 28) * rng.uniform(0.5, 1.0, size=3)
    noise = rng.normal(0, 6, size=(height, width, 3))
    image = base + blotches + pattern[..., None] * amplitude + noise
    return np.clip(image, 0, 255).astype(np.float32), base


def contrasting_colour(rng: np.random.Generator, background: np.ndarray, min_contrast: float = 80.0) -> np.ndarray:
    """A random RGB colour whose luminance differs from the background's by ``min_contrast`` or more."""
    target = _luminance(background)
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if abs(_luminance(colour) - target) >= min_contrast:
            return colour
    return np.zeros(3) if target > 127.5 else np.full(3, 255.0)


def render_digit(digit: np.ndarray, side: int) -> Tuple[np.ndarray, np.ndarray]:
    """Upscale an 8x8 digit (values in ``[0, 1]``) to ``side x side``: its opacity and its mask."""
    alpha = np.clip(cv2.resize(digit, (side, side), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return alpha, alpha >= MASK_THRESHOLD


def make_digit_scene(rng: np.random.Generator,
                     images: np.ndarray,
                     targets: np.ndarray,
                     pool: Sequence[int],
                     size: int = 64,
                     digits_per_scene: Sequence[int] = DIGITS_PER_SCENE,
                     digit_size: Sequence[int] = DIGIT_SIZE) -> DigitScene:
    """One scene of ``digits_per_scene`` (low, high) non-overlapping digits drawn from ``pool``
    (indices into ``images`` / ``targets``), each ``digit_size`` (low, high) pixels wide.

    A digit that finds no free place after 100 tries is left out (never the first one).
    """
    image, base = textured_background(rng, size, size)
    semantic = np.zeros((size, size), np.uint8)
    occupied = np.zeros((size, size), bool)
    masks: List[np.ndarray] = []
    labels: List[int] = []
    sources: List[int] = []
    for _ in range(int(rng.integers(digits_per_scene[0], digits_per_scene[1] + 1))):
        source = int(rng.choice(pool))
        side = int(rng.integers(digit_size[0], digit_size[1] + 1))
        for _ in range(100):
            top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            if not occupied[top:top + side, left:left + side].any():
                break
        else:
            continue
        occupied[top:top + side, left:left + side] = True
        alpha, local_mask = render_digit(images[source], side)
        colour = contrasting_colour(rng, base) * rng.uniform(0.9, 1.1, size=3)
        window = image[top:top + side, left:left + side]
        window[:] = window * (1 - alpha[..., None]) + np.clip(colour, 0, 255) * alpha[..., None]
        mask = np.zeros((size, size), bool)
        mask[top:top + side, left:left + side] = local_mask
        label = int(targets[source])
        semantic[mask] = label + 1
        masks.append(mask)
        labels.append(label)
        sources.append(source)
    return DigitScene(image=np.clip(image, 0, 255).astype(np.uint8), semantic=semantic,
                      masks=np.stack(masks) if masks else np.zeros((0, size, size), bool),
                      labels=np.asarray(labels, np.int64), sources=np.asarray(sources, np.int64))


def digit_scenes(split: str, count: int, size: int = 64, seed: int = 0, val_fraction: float = 0.3,
                 **scene_kwargs) -> Iterator[DigitScene]:
    """``count`` scenes of the ``'train'`` or ``'val'`` split; each split has its own random
    stream from ``seed`` (the val scenes do not depend on the number of training scenes)."""
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    images, targets = load_digit_images()
    pool = digit_split(len(images), val_fraction)[split]
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    for _ in range(count):
        yield make_digit_scene(rng, images, targets, pool, size=size, **scene_kwargs)


def write_digit_voc_dataset(root: str, num_train: int = 512, num_val: int = 128, size: int = 64, seed: int = 0,
                            val_fraction: float = 0.3, **scene_kwargs) -> str:
    """Digit scenes at ``root`` in the VOC 2012 (+ aug) segmentation layout (see
    :func:`~ipswap_mm.synthetic.voc.write_voc_scenes`); load them with ``BaseSegDataset``,
    ``img_suffix='.jpg'``, ``seg_map_suffix='.png'`` and ``metainfo=seg_metainfo()``."""
    splits = {split: digit_scenes(split, count, size, seed, val_fraction, **scene_kwargs)
              for split, count in (('train', num_train), ('val', num_val))}
    return write_voc_scenes(root, splits)


def write_digit_coco_dataset(root: str, num_train: int = 512, num_val: int = 128, size: int = 64, seed: int = 0,
                             val_fraction: float = 0.3, **scene_kwargs) -> str:
    """Digit scenes at ``root`` in the COCO 2017 instance layout (``train2017/``,
    ``val2017/``, ``annotations/instances_{train,val}2017.json``; categories ``1..10``
    named ``'0'`` .. ``'9'``); load them with ``CocoDataset`` and ``metainfo=det_metainfo()``."""
    categories = [dict(id=digit + 1, name=name, supercategory='digit') for digit, name in enumerate(DIGIT_CLASSES)]
    splits = {f'{split}2017': digit_scenes(split, count, size, seed, val_fraction, **scene_kwargs)
              for split, count in (('train', num_train), ('val', num_val))}
    return write_coco_scenes(root, splits, categories, [category['id'] for category in categories])
