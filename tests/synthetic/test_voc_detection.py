import os.path as osp
from xml.etree import ElementTree

import numpy as np
import pytest
from mmdet.datasets import VOCDataset

from ipswap_mm.synthetic import make_scene, write_voc_detection_dataset
from ipswap_mm.synthetic.voc_detection import DEFAULT_CLASSES

SIZE = (48, 64)


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory) -> str:
    return write_voc_detection_dataset(str(tmp_path_factory.mktemp('voc_gen') / 'VOCdevkit'), num_train=5,
                                       num_test=2, size=SIZE, seed=1)


def image_ids(root, year, split):
    with open(osp.join(root, year, 'ImageSets', 'Main', f'{split}.txt')) as file:
        return file.read().split()


def test_layout_splits_train_between_the_years(voc_root):
    assert len(image_ids(voc_root, 'VOC2007', 'trainval')) == 3
    assert len(image_ids(voc_root, 'VOC2012', 'trainval')) == 2
    assert len(image_ids(voc_root, 'VOC2007', 'test')) == 2
    for year, split in (('VOC2007', 'trainval'), ('VOC2012', 'trainval'), ('VOC2007', 'test')):
        for image_id in image_ids(voc_root, year, split):
            assert osp.exists(osp.join(voc_root, year, 'JPEGImages', f'{image_id}.jpg'))
            assert osp.exists(osp.join(voc_root, year, 'Annotations', f'{image_id}.xml'))


def test_boxes_are_one_based_inclusive_pixel_coordinates(voc_root):
    """Replay the scenes: xmin is the 1-based first column of the mask, xmax its 1-based last column."""
    rng = np.random.default_rng(1)
    names = VOCDataset.METAINFO['classes']
    for year, split in (('VOC2007', 'trainval'), ('VOC2012', 'trainval'), ('VOC2007', 'test')):
        for image_id in image_ids(voc_root, year, split):
            scene = make_scene(rng, *SIZE, DEFAULT_CLASSES)
            tree = ElementTree.parse(osp.join(voc_root, year, 'Annotations', f'{image_id}.xml'))
            assert [int(tree.find(f'size/{k}').text) for k in ('height', 'width')] == list(SIZE)
            objects = tree.findall('object')
            assert [o.find('name').text for o in objects] == [names[label] for label in scene.labels]
            for obj, mask in zip(objects, scene.masks):
                rows, cols = np.nonzero(mask)
                box = [int(obj.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
                assert box == [cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1]
                assert obj.find('difficult').text == '0'


def test_stock_voc_dataset_reads_it(voc_root):
    dataset = VOCDataset(data_root=voc_root, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                         data_prefix=dict(sub_data_root='VOC2007/'), pipeline=[], test_mode=True)
    assert len(dataset) == 3 and dataset.metainfo['dataset_type'] == 'VOC2007'
    labels = [inst['bbox_label'] for i in range(len(dataset)) for inst in dataset.get_data_info(i)['instances']]
    assert labels and set(labels) <= set(DEFAULT_CLASSES)


def test_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / 'VOC2007').mkdir()
    with pytest.raises(FileExistsError, match='not generated here'):
        write_voc_detection_dataset(str(tmp_path), num_train=1, num_test=1, size=SIZE)
