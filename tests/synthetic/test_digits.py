import json
import os.path as osp

import numpy as np
import pytest
from mmdet.datasets import CocoDataset
from mmseg.datasets import BaseSegDataset
from PIL import Image

from ipswap_mm.synthetic.coco import mask_polygons
from ipswap_mm.synthetic.digits import (
    DIGIT_CLASSES,
    SEG_CLASSES,
    det_metainfo,
    digit_scenes,
    digit_split,
    load_digit_images,
    render_digit,
    seg_metainfo,
    write_digit_coco_dataset,
    write_digit_voc_dataset,
)

SIZE = 64
NUM_TRAIN, NUM_VAL = 6, 3


@pytest.fixture(scope='module')
def scenes():
    return list(digit_scenes('train', 12, SIZE, seed=5)) + list(digit_scenes('val', 6, SIZE, seed=5))


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('digits')
    voc = write_digit_voc_dataset(str(base / 'VOC2012'), NUM_TRAIN, NUM_VAL, SIZE, seed=2)
    coco = write_digit_coco_dataset(str(base / 'coco'), NUM_TRAIN, NUM_VAL, SIZE, seed=2)
    return voc, coco


def test_labels_are_the_digit_class_exactly_on_its_mask(scenes):
    images, targets = load_digit_images()
    for scene in scenes:
        assert scene.image.shape == (SIZE, SIZE, 3) and scene.image.dtype == np.uint8
        assert 2 <= len(scene.labels) <= 4
        assert not (scene.masks.sum(axis=0) > 1).any()  # digits never overlap
        expected = np.zeros((SIZE, SIZE), np.uint8)
        for mask, label, source in zip(scene.masks, scene.labels, scene.sources):
            assert mask.any() and label == targets[source]
            expected[mask] = label + 1
        np.testing.assert_array_equal(scene.semantic, expected)


def test_masks_are_the_thresholded_upscaled_digit(scenes):
    images, _ = load_digit_images()
    for scene in scenes:
        for mask, source in zip(scene.masks, scene.sources):
            rows, cols = np.nonzero(mask)
            top, left = rows.min(), cols.min()
            found = False
            for side in range(16, 25):  # the digit's square starts at or before its mask's first row / column
                alpha, local = render_digit(images[source], side)
                r0, c0 = np.nonzero(local)[0].min(), np.nonzero(local)[1].min()
                y, x = top - r0, left - c0
                if 0 <= y <= SIZE - side and 0 <= x <= SIZE - side:
                    window = np.zeros_like(mask)
                    window[y:y + side, x:x + side] = local
                    found |= bool((window == mask).all())
            assert found


def test_train_and_val_scenes_use_disjoint_digit_images():
    split = digit_split(1797)
    assert set(split['train']).isdisjoint(split['val'])
    assert len(split['train']) + len(split['val']) == 1797
    train = np.concatenate([s.sources for s in digit_scenes('train', 30, SIZE, seed=0)])
    val = np.concatenate([s.sources for s in digit_scenes('val', 30, SIZE, seed=0)])
    assert set(train) <= set(split['train']) and set(val) <= set(split['val'])


def test_the_same_seed_gives_the_same_scenes_and_val_does_not_depend_on_train_count():
    first = list(digit_scenes('val', 3, SIZE, seed=4))
    again = list(digit_scenes('val', 3, SIZE, seed=4))
    other = list(digit_scenes('val', 3, SIZE, seed=5))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.semantic, b.semantic)
    assert any((a.image != b.image).any() for a, b in zip(first, other))


def test_voc_layout_loads_with_the_stock_seg_dataset_and_matches_the_scenes(roots):
    voc, _ = roots
    scenes = {f'train_{i:05d}': s for i, s in enumerate(digit_scenes('train', NUM_TRAIN, SIZE, seed=2))}
    dataset = BaseSegDataset(data_root=voc, ann_file='ImageSets/Segmentation/train.txt', metainfo=seg_metainfo(),
                             data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                             img_suffix='.jpg', seg_map_suffix='.png', pipeline=[])
    assert dataset.metainfo['classes'] == SEG_CLASSES and len(dataset) == NUM_TRAIN
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        name = osp.splitext(osp.basename(info['img_path']))[0]
        assert info['label_map'] is None  # digit ids are stored as they are
        np.testing.assert_array_equal(np.array(Image.open(info['seg_map_path'])), scenes[name].semantic)
    with open(osp.join(voc, 'ImageSets/Segmentation/val.txt')) as file:
        assert len(file.read().split()) == NUM_VAL


def test_coco_layout_loads_with_the_stock_det_dataset_boxes_tight_on_masks(roots):
    _, coco = roots
    scenes = list(digit_scenes('train', NUM_TRAIN, SIZE, seed=2))
    dataset = CocoDataset(data_root=coco, ann_file='annotations/instances_train2017.json', metainfo=det_metainfo(),
                          data_prefix=dict(img='train2017/'), pipeline=[], test_mode=True)
    assert dataset.metainfo['classes'] == DIGIT_CLASSES and len(dataset) == NUM_TRAIN
    with open(osp.join(coco, 'annotations', 'instances_train2017.json')) as file:
        payload = json.load(file)
    assert [c['name'] for c in payload['categories']] == list(DIGIT_CLASSES)
    for index, scene in enumerate(scenes):
        info = dataset.get_data_info(index)
        kept = [i for i, mask in enumerate(scene.masks) if mask_polygons(mask)]
        assert [inst['bbox_label'] for inst in info['instances']] == [int(scene.labels[i]) for i in kept]
        for inst, i in zip(info['instances'], kept):
            rows, cols = np.nonzero(scene.masks[i])
            # CocoDataset turns [x, y, w, h] into [x1, y1, x2, y2]: the mask's pixel edges
            assert inst['bbox'] == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert all(len(polygon) >= 6 for polygon in inst['mask'])
