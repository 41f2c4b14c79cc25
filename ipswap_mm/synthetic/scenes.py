"""Small generated scenes: textured backgrounds with coloured objects of known classes.

Pure NumPy. Each object class has its own colour and shape, so a small model can learn
them in a few hundred iterations; every scene carries its per-pixel class map and the
instance masks of its objects, from which boxes follow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

SHAPES = ('disc', 'box', 'triangle', 'ring')


@dataclass
class Scene:
    """One generated image: ``image (H, W, 3) uint8`` (RGB), ``semantic (H, W) uint8``
    class map (0 is background), instance ``masks (K, H, W) bool`` and their ``labels (K,)``."""

    image: np.ndarray
    semantic: np.ndarray
    masks: np.ndarray
    labels: np.ndarray


def masks_to_pixel_ranges(masks: np.ndarray) -> np.ndarray:
    """``(K, H, W)`` bool masks (none empty) -> ``(K, 4)`` int ``c1, r1, c2, r2`` (end exclusive):
    every object's tight box in pixel edges."""
    rows, cols = masks.any(2), masks.any(1)
    first_row, first_col = rows.argmax(1), cols.argmax(1)
    last_row = masks.shape[1] - rows[:, ::-1].argmax(1)
    last_col = masks.shape[2] - cols[:, ::-1].argmax(1)
    return np.stack([first_col, first_row, last_col, last_row], axis=1).reshape(-1, 4)


def class_colour(label: int) -> np.ndarray:
    """A fixed, distinct RGB colour per class id."""
    rng = np.random.default_rng(1000 + label)
    return rng.integers(40, 256, size=3).astype(np.float32)


def _shape_mask(shape: str, height: int, width: int, cy: float, cx: float, radius: float,
                rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if shape == 'disc':
        return dy**2 + dx**2 <= radius**2
    if shape == 'box':
        aspect = rng.uniform(0.6, 1.6)
        return (np.abs(dy) <= radius / aspect) & (np.abs(dx) <= radius * aspect)
    if shape == 'triangle':
        return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
    return (dy**2 + dx**2 <= radius**2) & (dy**2 + dx**2 >= (0.5 * radius)**2)


def make_scene(rng: np.random.Generator, height: int, width: int, classes: Sequence[int],
               max_objects: int = 3) -> Scene:
    """Render one scene with 1..``max_objects`` objects whose classes are drawn from ``classes``."""
    base = rng.uniform(60, 160, size=3)
    noise = rng.normal(0, 18, size=(height, width, 1)) + rng.normal(0, 6, size=(height, width, 3))
    image = np.clip(base + noise, 0, 255).astype(np.float32)
    semantic = np.zeros((height, width), np.uint8)
    masks: List[np.ndarray] = []
    labels: List[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.choice(classes))
        radius = rng.uniform(0.12, 0.3) * min(height, width)
        cy, cx = rng.uniform(radius * 0.6, height - radius * 0.6), rng.uniform(radius * 0.6, width - radius * 0.6)
        mask = _shape_mask(SHAPES[label % len(SHAPES)], height, width, cy, cx, radius, rng)
        if mask.sum() < 16:
            continue
        shade = class_colour(label) * rng.uniform(0.85, 1.15) + rng.normal(0, 10, size=(height, width, 3))
        image[mask] = np.clip(shade[mask], 0, 255)
        for previous in masks:  # later objects occlude earlier ones
            previous &= ~mask
        semantic[mask] = label
        masks.append(mask)
        labels.append(label)
    keep = [i for i, m in enumerate(masks) if m.sum() >= 16]
    return Scene(image=image.astype(np.uint8), semantic=semantic,
                 masks=np.stack([masks[i] for i in keep]) if keep else np.zeros((0, height, width), bool),
                 labels=np.asarray([labels[i] for i in keep], dtype=np.int64))
