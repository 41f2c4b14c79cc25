import numpy as np

from ipswap_mm.synthetic.coco import mask_box
from ipswap_mm.synthetic.scenes import masks_to_pixel_ranges


def test_pixel_ranges_of_masks_and_the_coco_box_of_one():
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:3, 2:7] = True
    masks[1, 5, 0] = True
    assert masks_to_pixel_ranges(masks).tolist() == [[2, 1, 7, 3], [0, 5, 1, 6]]
    assert mask_box(masks[0]) == [2.0, 1.0, 5.0, 2.0]  # x, y, w, h
