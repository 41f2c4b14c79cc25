import os.path as osp

import pytest

from ipswap_mm.synthetic import write_voc_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory) -> str:
    """A small generated dataset in the Pascal VOC 2012 + aug layout."""
    return write_voc_dataset(str(tmp_path_factory.mktemp('voc') / 'VOC2012'), num_train=16, num_val=4,
                             size=(72, 96))
