"""Write generated scenes in the Pascal VOC 2007 + 2012 detection layout (``VOCdevkit``)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Sequence
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from .scenes import make_scene, masks_to_pixel_ranges
from .voc import MARKER, check_writable

# aeroplane, bus, cat, dog, person (0-based VOCDataset labels)
DEFAULT_CLASSES = (0, 5, 7, 11, 14)


def voc_class_names() -> tuple:
    """The 20 Pascal VOC class names, in ``mmdet.datasets.VOCDataset`` order."""
    from mmdet.datasets import VOCDataset
    return tuple(VOCDataset.METAINFO['classes'])


def _text(parent: ElementTree.Element, tag: str, value) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag)
    element.text = str(value)
    return element


def voc_annotation(folder: str, filename: str, height: int, width: int, boxes: np.ndarray,
                   names: Sequence[str]) -> ElementTree.ElementTree:
    """One VOC ``Annotations/*.xml`` tree.

    Args:
        boxes: ``(K, 4)`` int pixel ranges ``c1, r1, c2, r2`` (0-based, end exclusive);
            written in VOC's 1-based inclusive pixel coordinates
            (``xmin = c1 + 1``, ``xmax = c2``).
        names: The class name of every box.
    """
    root = ElementTree.Element('annotation')
    _text(root, 'folder', folder)
    _text(root, 'filename', filename)
    size = ElementTree.SubElement(root, 'size')
    _text(size, 'width', width)
    _text(size, 'height', height)
    _text(size, 'depth', 3)
    _text(root, 'segmented', 0)
    for (c1, r1, c2, r2), name in zip(boxes.tolist(), names):
        obj = ElementTree.SubElement(root, 'object')
        _text(obj, 'name', name)
        _text(obj, 'pose', 'Unspecified')
        _text(obj, 'truncated', 0)
        _text(obj, 'difficult', 0)
        box = ElementTree.SubElement(obj, 'bndbox')
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), (c1 + 1, r1 + 1, c2, r2)):
            _text(box, tag, value)
    return ElementTree.ElementTree(root)


def write_voc_detection_dataset(root: str,
                                num_train: int = 16,
                                num_test: int = 4,
                                size: Sequence[int] = (96, 128),
                                classes: Sequence[int] = DEFAULT_CLASSES,
                                seed: int = 0) -> str:
    """Write a small dataset at ``root`` (the ``data/VOCdevkit/`` folder) and return ``root``.

    Layout, as ``mmdet::_base_/datasets/voc0712.py`` reads it: ``VOC2007/`` and
    ``VOC2012/``, each with ``JPEGImages/*.jpg``, ``Annotations/*.xml`` (size; per object
    name, ``difficult=0`` and the tight ``bndbox`` of its mask) and
    ``ImageSets/Main/trainval.txt``; ``VOC2007/ImageSets/Main/test.txt`` lists the test
    images (stored in ``VOC2007/`` too).

    Args:
        root: Output folder; refused if it holds data that was not generated here.
        num_train: Training images in all; the first half goes to VOC2007, the rest to VOC2012.
        num_test: VOC2007 test images.
        size: ``(height, width)`` of every image.
        classes: 0-based ``VOCDataset`` labels the scenes draw from.
        seed: Random seed; the same seed writes the same dataset.
    """
    check_writable(root)
    names = voc_class_names()
    for label in classes:
        if not 0 <= int(label) < len(names):
            raise ValueError(f'classes holds {label}, not a VOCDataset label (0..{len(names) - 1})')
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    open(osp.join(root, MARKER), 'w').close()
    num_2007 = (num_train + 1) // 2
    splits = (('VOC2007', 'trainval', num_2007), ('VOC2012', 'trainval', num_train - num_2007),
              ('VOC2007', 'test', num_test))
    for year, split, count in splits:
        for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
            os.makedirs(osp.join(root, year, sub), exist_ok=True)
        image_ids = []
        for index in range(count):
            image_id = f'{year[3:]}_{split}_{index:06d}'
            scene = make_scene(rng, size[0], size[1], classes)
            Image.fromarray(scene.image).save(osp.join(root, year, 'JPEGImages', f'{image_id}.jpg'), quality=95)
            tree = voc_annotation(year, f'{image_id}.jpg', size[0], size[1], masks_to_pixel_ranges(scene.masks),
                                  [names[int(label)] for label in scene.labels])
            tree.write(osp.join(root, year, 'Annotations', f'{image_id}.xml'))
            image_ids.append(image_id)
        with open(osp.join(root, year, 'ImageSets', 'Main', f'{split}.txt'), 'w') as file:
            file.write(''.join(f'{image_id}\n' for image_id in image_ids))
    return root
