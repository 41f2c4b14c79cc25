import json
import os.path as osp

import cv2
import numpy as np
import pytest
from mmdet.datasets import CocoDataset
from mmdet.structures.mask import PolygonMasks

from ipswap_mm.synthetic import make_scene, write_coco_dataset
from ipswap_mm.synthetic.coco import COCO_CATEGORY_IDS, DEFAULT_CLASSES, mask_polygons

SIZE = (48, 64)


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory) -> str:
    return write_coco_dataset(str(tmp_path_factory.mktemp('coco_gen') / 'coco'), num_train=6, num_val=2, size=SIZE,
                              seed=3)


def load(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}2017.json')) as file:
        return json.load(file)


def test_stock_coco_dataset_reads_the_generated_classes(coco_root):
    for split in ('train', 'val'):
        dataset = CocoDataset(data_root=coco_root, ann_file=f'annotations/instances_{split}2017.json',
                              data_prefix=dict(img=f'{split}2017/'), pipeline=[], test_mode=True)
        payload = load(coco_root, split)
        names = {cat['id']: cat['name'] for cat in payload['categories']}
        assert len(dataset) == len(payload['images'])
        labels = [inst['bbox_label'] for i in range(len(dataset)) for inst in dataset.get_data_info(i)['instances']]
        assert labels and set(labels) <= set(DEFAULT_CLASSES)
        # the dataset's label of every annotation is the index of its category name in CocoDataset
        by_image = {}
        for ann in payload['annotations']:
            by_image.setdefault(ann['image_id'], []).append(names[ann['category_id']])
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            assert [dataset.metainfo['classes'][inst['bbox_label']] for inst in info['instances']] == \
                by_image.get(info['img_id'], [])
            assert osp.exists(info['img_path'])


def test_categories_are_the_80_coco_ids_and_names(coco_root):
    categories = load(coco_root, 'train')['categories']
    assert [c['id'] for c in categories] == list(COCO_CATEGORY_IDS) and len(categories) == 80
    assert tuple(c['name'] for c in categories) == CocoDataset.METAINFO['classes']


def test_annotations_follow_the_scene_masks(coco_root):
    """Replay the scenes: every kept object has its mask's box, area and a polygon close to it."""
    rng = np.random.default_rng(3)
    annotations = iter(load(coco_root, 'train')['annotations'])
    for _ in range(6):
        scene = make_scene(rng, *SIZE, DEFAULT_CLASSES)
        for mask, label in zip(scene.masks, scene.labels):
            if not mask_polygons(mask):
                continue
            ann = next(annotations)
            rows, cols = np.nonzero(mask)
            assert ann['bbox'] == [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
            x, y, w, h = (int(v) for v in ann['bbox'])
            assert ann['area'] == mask.sum() and ann['iscrowd'] == 0
            assert ann['category_id'] == COCO_CATEGORY_IDS[label]
            assert all(len(polygon) >= 6 and len(polygon) % 2 == 0 for polygon in ann['segmentation'])
            raster = PolygonMasks([[np.asarray(p) for p in ann['segmentation']]], *SIZE).to_ndarray()[0] > 0
            # the polygon, rasterised as MMDetection does, covers every pixel of the mask and lies
            # inside its box (it fills a ring's hole: outer contours)
            assert not (mask & ~raster).any()
            assert not raster[:, :x].any() and not raster[:, x + w:].any()
            assert not raster[:y].any() and not raster[y + h:].any()
            filled = cv2.drawContours(np.zeros(SIZE, np.uint8), cv2.findContours(
                mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0], -1, 1, cv2.FILLED) > 0
            assert not (raster & ~filled).any()


@pytest.mark.parametrize('rows, cols', [(slice(2, 6), slice(2, 6)), (slice(2, 3), slice(1, 6)),
                                        (slice(0, 8), slice(7, 8)), (slice(3, 4), slice(3, 4))])
def test_a_polygon_rasterises_to_its_mask(rows, cols):
    """A square, a one-row line, a column at the image's edge, a single pixel: each polygon
    covers exactly its pixels, as MMDetection rasterises it (an outline through the border
    pixels' centres would lose the right column and the bottom row)."""
    mask = np.zeros((8, 8), bool)
    mask[rows, cols] = True
    polygons = mask_polygons(mask)
    assert len(polygons) == 1 and len(polygons[0]) == 8  # four corners, an eighth of a pixel inside the edges
    raster = PolygonMasks([[np.asarray(polygons[0])]], 8, 8).to_ndarray()[0] > 0
    assert (raster == mask).all()


def test_an_empty_mask_gives_no_polygon():
    assert mask_polygons(np.zeros((8, 8), bool)) == []


def test_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / 'mine.txt').write_text('not generated')
    with pytest.raises(FileExistsError, match='not generated here'):
        write_coco_dataset(str(tmp_path), num_train=1, num_val=1, size=SIZE)
    generated = tmp_path / 'generated'
    write_coco_dataset(str(generated), num_train=1, num_val=1, size=SIZE)
    write_coco_dataset(str(generated), num_train=2, num_val=1, size=SIZE)  # its own output: rewritten
    assert len(load(str(generated), 'train')['images']) == 2
