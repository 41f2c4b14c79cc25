"""Write generated scenes in the COCO 2017 instance layout (boxes and polygon masks).

The JSON files list the 80 COCO categories with their real ids and the names of
``mmdet.datasets.CocoDataset``, so the stock ``CocoDataset`` maps them to its labels;
only the handful of classes the scenes draw actually appear.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Iterable, List, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from .scenes import Scene, make_scene, masks_to_pixel_ranges
from .voc import MARKER, check_writable

# The ids of the 80 COCO 2017 categories, in the order of CocoDataset.METAINFO['classes'].
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
                     31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
                     56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
                     85, 86, 87, 88, 89, 90)

# person, car, bird, cat, chair (0-based CocoDataset labels)
DEFAULT_CLASSES = (0, 2, 14, 15, 56)


def coco_categories() -> List[dict]:
    """The 80 COCO categories: real ids, ``CocoDataset`` names."""
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    if len(names) != len(COCO_CATEGORY_IDS):
        raise RuntimeError(f'CocoDataset lists {len(names)} classes, expected {len(COCO_CATEGORY_IDS)}')
    return [dict(id=cat_id, name=name, supercategory='object') for cat_id, name in zip(COCO_CATEGORY_IDS, names)]


POLYGON_UPSAMPLING = 4


def mask_polygons(mask: np.ndarray) -> List[List[float]]:
    """Outer contours of an ``(H, W)`` bool mask as COCO polygons ``[x0, y0, x1, y1, ...]``
    that rasterise (``PolygonMasks.to_ndarray``, pycocotools) to the mask's pixels, holes
    filled. OpenCV traces a contour through the centres of the border pixels, which would
    leave out the right column and bottom row of every object; it is traced on the mask
    upsampled 4 times instead, and each vertex ``v`` mapped back to ``(v + 0.5) / 4``: an
    eighth of a pixel inside the object's pixel edges."""
    scale = POLYGON_UPSAMPLING
    upsampled = np.kron(mask.astype(np.uint8), np.ones((scale, scale), np.uint8))
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= 3 and cv2.contourArea(contour) > 0:
            polygons.append([float((v + 0.5) / scale) for v in contour.reshape(-1)])
    return polygons


def mask_box(mask: np.ndarray) -> List[float]:
    """Tight ``[x, y, w, h]`` box (pixel edges) of the True pixels of a non-empty ``(H, W)`` mask."""
    c1, r1, c2, r2 = masks_to_pixel_ranges(mask[None])[0].tolist()
    return [float(c1), float(r1), float(c2 - c1), float(r2 - r1)]


def write_coco_dataset(root: str,
                       num_train: int = 16,
                       num_val: int = 4,
                       size: Sequence[int] = (96, 128),
                       classes: Sequence[int] = DEFAULT_CLASSES,
                       seed: int = 0,
                       max_objects: int = 3) -> str:
    """Write a small dataset at ``root`` (the ``data/coco/`` folder) and return ``root``.

    Layout: ``train2017/*.jpg``, ``val2017/*.jpg`` and
    ``annotations/instances_{train,val}2017.json`` with one annotation per object:
    ``bbox`` (tight box of the mask, ``[x, y, w, h]``), polygon ``segmentation``,
    ``area`` (mask pixels) and ``iscrowd=0``. The polygons are the outer contours of the
    mask (COCO polygons have no holes: a ring's hole is filled). Objects whose polygons
    are all degenerate are left out.

    Args:
        root: Output folder; refused if it holds data that was not generated here.
        num_train, num_val: Images per split.
        size: ``(height, width)`` of every image.
        classes: 0-based ``CocoDataset`` labels the scenes draw from.
        seed: Random seed; the same seed writes the same dataset.
        max_objects: Most objects per image.
    """
    categories = coco_categories()
    for label in classes:
        if not 0 <= int(label) < len(categories):
            raise ValueError(f'classes holds {label}, not a CocoDataset label (0..{len(categories) - 1})')
    rng = np.random.default_rng(seed)
    splits = {split: (make_scene(rng, size[0], size[1], classes, max_objects=max_objects) for _ in range(count))
              for split, count in (('train2017', num_train), ('val2017', num_val))}
    return write_coco_scenes(root, splits, categories, [category['id'] for category in categories])


def write_coco_scenes(root: str, splits: Mapping[str, Iterable[Scene]], categories: List[dict],
                      category_ids: Sequence[int]) -> str:
    """Write scenes at ``root`` in the COCO instance layout and return ``root``.

    ``splits`` maps folder names (``'train2017'``, ``'val2017'``) to iterables of
    :class:`Scene`, consumed in that order; ``categories`` is the JSON category list and
    ``category_ids[label]`` the category id of a scene label. One annotation per object:
    ``bbox`` (tight box of the mask, ``[x, y, w, h]``), polygon ``segmentation`` (outer
    contours), ``area`` (mask pixels), ``iscrowd=0``; objects whose polygons are all
    degenerate are left out. Refuses to write into a folder holding data not generated here.
    """
    check_writable(root)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    open(osp.join(root, MARKER), 'w').close()
    annotation_id = 1
    for split, scenes in splits.items():
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for index, scene in enumerate(scenes):
            image_id = index + 1
            file_name = f'{index:012d}.jpg'
            height, width = scene.semantic.shape
            Image.fromarray(scene.image).save(osp.join(root, split, file_name), quality=95)
            images.append(dict(id=image_id, file_name=file_name, height=int(height), width=int(width)))
            for mask, label in zip(scene.masks, scene.labels):
                polygons = mask_polygons(mask)
                if not polygons:
                    continue
                annotations.append(dict(id=annotation_id, image_id=image_id,
                                        category_id=int(category_ids[int(label)]), bbox=mask_box(mask),
                                        area=float(mask.sum()), segmentation=polygons, iscrowd=0))
                annotation_id += 1
        payload = dict(info=dict(description='ipswap_mm generated scenes'), licenses=[], images=images,
                       annotations=annotations, categories=categories)
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as file:
            json.dump(payload, file)
    return root
