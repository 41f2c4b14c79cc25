"""Write generated scenes in the Pascal VOC 2012 (+ aug) segmentation layout."""
from __future__ import annotations

import os
import os.path as osp
from typing import Sequence

import numpy as np
from PIL import Image

from .scenes import make_scene

MARKER = '.ipswap_generated'


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
    again, as VOC12aug's ``aug.txt`` does with its own.

    Refuses to write into a folder that holds data it did not generate.
    """
    if osp.isdir(root) and os.listdir(root) and not osp.exists(osp.join(root, MARKER)):
        raise FileExistsError(f'{root} holds data that was not generated here; not overwriting it')
    rng = np.random.default_rng(seed)
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    open(osp.join(root, MARKER), 'w').close()
    palette = voc_palette()
    names = {'train': [], 'val': []}
    for split, count in (('train', num_train), ('val', num_val)):
        for index in range(count):
            name = f'{split}_{index:05d}'
            scene = make_scene(rng, size[0], size[1], classes)
            Image.fromarray(scene.image).save(osp.join(root, 'JPEGImages', f'{name}.jpg'), quality=95)
            label = Image.frombytes('P', (size[1], size[0]), np.ascontiguousarray(scene.semantic).tobytes())
            label.putpalette(palette)
            label.save(osp.join(root, 'SegmentationClass', f'{name}.png'))
            label.save(osp.join(root, 'SegmentationClassAug', f'{name}.png'))
            names[split].append(name)
    lists = {'train.txt': names['train'], 'aug.txt': names['train'], 'val.txt': names['val']}
    for filename, entries in lists.items():
        with open(osp.join(root, 'ImageSets/Segmentation', filename), 'w') as file:
            file.write('\n'.join(entries) + '\n')
    return root
