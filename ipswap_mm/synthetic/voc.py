"""Write generated scenes in the Pascal VOC 2012 (+ aug) segmentation layout."""
from __future__ import annotations

import os
import os.path as osp
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from .scenes import Scene, make_scene

MARKER = '.ipswap_generated'


def check_writable(root: str) -> None:
    """Raise unless ``root`` is missing, empty, or holds data generated here (the marker)."""
    if osp.isdir(root) and os.listdir(root) and not osp.exists(osp.join(root, MARKER)):
        raise FileExistsError(f'{root} holds data that was not generated here; not overwriting it')


def voc_palette() -> list:
    """The standard Pascal VOC colour map (256 entries, flattened RGB)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        value = index
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette += [r, g, b]
    return palette


def write_voc_dataset(root: str,
                      num_train: int = 24,
                      num_val: int = 8,
                      size: Sequence[int] = (120, 160),
                      classes: Sequence[int] = (1, 5, 8, 12, 15),
                      seed: int = 0) -> str:
    """Write a small dataset at ``root`` (the ``VOC2012`` folder) and return ``root``.

    Layout: ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` and
    ``SegmentationClassAug/*.png`` (palette PNGs of class ids), and
    ``ImageSets/Segmentation/{train,aug,val}.txt``; ``aug`` lists the training images
    again, so the stock VOC12aug configs (a ``ConcatDataset`` of ``train.txt`` and
    ``aug.txt``) read every image twice. MMSegmentation's real ``aug.txt`` holds the SBD
    images that ``train.txt`` does not; here the copies exercise the pair sampler's rule
    for repeated images (an image is not paired with its copy).

    Refuses to write into a folder that holds data it did not generate.
    """
    rng = np.random.default_rng(seed)
    splits = {split: (make_scene(rng, size[0], size[1], classes) for _ in range(count))
              for split, count in (('train', num_train), ('val', num_val))}
    return write_voc_scenes(root, splits)


def write_voc_scenes(root: str, splits: Mapping[str, Iterable[Scene]], palette: Optional[list] = None) -> str:
    """Write scenes at ``root`` in the VOC 2012 (+ aug) segmentation layout and return ``root``.

    ``splits`` maps ``'train'`` and ``'val'`` to iterables of :class:`Scene`, consumed in
    that order; each scene's ``semantic`` map is written as its label PNG (``palette``:
    the VOC colour map unless given), its image as ``{split}_{index:05d}.jpg``.
    Refuses to write into a folder that holds data it did not generate.
    """
    check_writable(root)
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    open(osp.join(root, MARKER), 'w').close()
    palette = voc_palette() if palette is None else palette
    names = {'train': [], 'val': []}
    for split, scenes in splits.items():
        for index, scene in enumerate(scenes):
            name = f'{split}_{index:05d}'
            height, width = scene.semantic.shape
            Image.fromarray(scene.image).save(osp.join(root, 'JPEGImages', f'{name}.jpg'), quality=95)
            label = Image.frombytes('P', (width, height), np.ascontiguousarray(scene.semantic).tobytes())
            label.putpalette(palette)
            label.save(osp.join(root, 'SegmentationClass', f'{name}.png'))
            label.save(osp.join(root, 'SegmentationClassAug', f'{name}.png'))
            names.setdefault(split, []).append(name)
    lists = {'train.txt': names['train'], 'aug.txt': names['train'], 'val.txt': names['val']}
    for filename, entries in lists.items():
        with open(osp.join(root, 'ImageSets/Segmentation', filename), 'w') as file:
            file.write('\n'.join(entries) + '\n')
    return root
