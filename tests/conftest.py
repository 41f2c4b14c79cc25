import os.path as osp

import pytest

from ipswap_mm.synthetic import write_coco_dataset, write_voc_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_SIZE = (96, 128)  # (h, w) of the generated detection images
DET_NUM_TRAIN = 8  # one epoch at batch 2: 4 iterations of one pair


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory) -> str:
    """A small generated dataset in the Pascal VOC 2012 + aug layout."""
    return write_voc_dataset(str(tmp_path_factory.mktemp('voc') / 'VOC2012'), num_train=16, num_val=4,
                             size=(72, 96))


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory) -> str:
    """A small generated dataset in the COCO 2017 layout (boxes and polygons)."""
    return write_coco_dataset(str(tmp_path_factory.mktemp('coco')), num_train=DET_NUM_TRAIN, num_val=2, size=DET_SIZE)
