import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.structures import InstanceData
from PIL import Image

from ipswap_mm.visualization import (
    draw_instances,
    instance_masks_array,
    label_colour,
    save_det_pairs_figure,
    save_seg_pairs_figure,
)

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
GREY = 128
H, W = 32, 48  # batch size in the figure tests
DPI = 80  # save_*_pairs_figure save at this resolution


def grey_batch(num_images: int) -> torch.Tensor:
    """``(N, 3, H, W)`` uniform grey images, normalised like the configs."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (torch.full((num_images, 3, H, W), float(GREY)) - mean) / std


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert('RGB'))


def pixels_near(picture: np.ndarray, colour: np.ndarray, tolerance: int = 12) -> int:
    """How many pixels of an ``(H, W, 3)`` picture are within ``tolerance`` of ``colour`` in every channel."""
    return int((np.abs(picture.astype(int) - np.asarray(colour, int)).max(-1) <= tolerance).sum())


# ------------------------------------------------------------------ draw_instances


def test_draw_instances_outlines_the_box_and_tints_only_the_mask():
    image = np.full((20, 30, 3), GREY, np.uint8)
    mask = np.zeros((1, 20, 30), bool)
    mask[0, 6:10, 7:12] = True
    drawn = draw_instances(image, torch.tensor([[5.0, 4.0, 15.0, 12.0]]), torch.tensor([1]), BitmapMasks(mask, 20, 30))
    colour = label_colour(1)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == GREY).all()  # the input is not modified
    ring = np.zeros((20, 30), bool)
    ring[4, 5:15] = ring[11, 5:15] = ring[4:12, 5] = ring[4:12, 14] = True
    assert (drawn[ring] == colour).all()  # the box's one-pixel ring, pixels 5..14 x 4..11
    inside = mask[0] & ~ring
    tinted = drawn[inside].astype(int)
    assert (tinted != GREY).any(-1).all()  # every mask pixel changed ...
    assert (np.abs(tinted - colour) < np.abs(GREY - colour.astype(int)) + 1).all()  # ... towards the class colour
    untouched = ~ring & ~mask[0]
    assert (drawn[untouched] == GREY).all()


def test_draw_instances_clips_boxes_and_accepts_box_types_and_polygons():
    image = np.full((10, 10, 3), GREY, np.uint8)
    polygons = PolygonMasks([[np.array([2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0])]], 10, 10)
    drawn = draw_instances(image, HorizontalBoxes(torch.tensor([[-3.0, -3.0, 30.0, 30.0]])), [0], polygons)
    colour = label_colour(0)
    assert (drawn[0, :] == colour).all() and (drawn[:, -1] == colour).all()  # clipped to the image border
    assert (drawn[3, 3] != GREY).any() and (drawn[8, 8] == GREY).all()
    # colours given per class id
    given = draw_instances(image, torch.tensor([[1.0, 1.0, 9.0, 9.0]]), [7], colours={7: (1, 2, 3)})
    assert (given[1, 1:9] == (1, 2, 3)).all()
    # an empty box, and no objects at all, draw nothing
    assert (draw_instances(image, torch.tensor([[4.0, 4.0, 4.0, 4.0]]), [0]) == GREY).all()
    assert (draw_instances(image, torch.zeros(0, 4), torch.zeros(0)) == GREY).all()


def test_instance_masks_array_crops_and_pads_every_mask_type():
    bitmap = BitmapMasks(np.ones((2, 4, 9), np.uint8), 4, 9)
    polygons = PolygonMasks([[np.array([0.0, 0.0, 3.0, 0.0, 3.0, 3.0, 0.0, 3.0])]], 4, 9)
    for masks, count in ((bitmap, 2), (polygons, 1), (torch.ones(2, 4, 9), 2), (np.ones((2, 4, 9)), 2)):
        array = instance_masks_array(masks, 6, 5)
        assert array.shape == (count, 6, 5) and array.dtype == bool
        assert not array[:, 4:].any()  # padded rows
    assert instance_masks_array(polygons, 6, 5)[0].sum() == 9
    assert instance_masks_array(bitmap, 6, 5)[:, :4].all()  # cropped columns


def test_label_colours_differ_between_classes():
    colours = {tuple(label_colour(label)) for label in range(10)}
    assert len(colours) == 10


# ------------------------------------------------------------------ figures


def det_samples(num_images: int, masks: str, with_objects: bool = True) -> list:
    samples = []
    for _ in range(num_images):
        boxes = torch.tensor([[8.0, 6.0, 30.0, 24.0]]) if with_objects else torch.zeros(0, 4)
        labels = torch.tensor([2] if with_objects else [], dtype=torch.long)
        rects = [[8.0, 6.0, 30.0, 6.0, 30.0, 24.0, 8.0, 24.0]] if with_objects else []
        if masks == 'polygon':
            mask = PolygonMasks([[np.array(r)] for r in rects], H, W)
        else:
            bitmap = np.zeros((len(rects), H, W), np.uint8)
            bitmap[:, 6:24, 8:30] = 1
            mask = BitmapMasks(bitmap, H, W)
        sample = DetDataSample(metainfo=dict(img_shape=(H, W)))
        sample.gt_instances = InstanceData(bboxes=boxes, labels=labels, masks=mask)
        samples.append(sample)
    return samples


def det_figure(path, with_objects=True, num_pairs=3, num_images=4):
    return save_det_pairs_figure(str(path), grey_batch(num_images), det_samples(num_images, 'polygon', with_objects),
                                 grey_batch(num_images), det_samples(num_images, 'bitmap', with_objects), MEAN, STD,
                                 class_names=('person', 'bicycle', 'car'), num_pairs=num_pairs)


def test_det_figure_has_one_row_per_pair_and_draws_the_objects(tmp_path):
    path = det_figure(tmp_path / 'pairs.png')
    picture = png(path)
    # 4 panels of 3 inches; 2 pairs (num_pairs=3 is capped by the batch), 3 * H / W inches each, plus the title
    assert picture.shape[:2] == (round((2 * 3.0 * H / W + 0.8) * DPI), round(4 * 3.0 * DPI))
    assert png(det_figure(tmp_path / 'one.png', num_pairs=1)).shape[0] == round((3.0 * H / W + 0.8) * DPI)
    car = label_colour(0)  # the only class shown gets the first colour
    empty = png(det_figure(tmp_path / 'empty.png', with_objects=False))
    assert pixels_near(empty, car) == 0
    assert pixels_near(empty, np.array([GREY] * 3)) > 0  # the images themselves are there
    # every one of the 8 panels has a box outline in the class colour: a few hundred pixels at least
    assert pixels_near(picture, car) > 8 * 40


def test_det_figure_gives_the_classes_shown_distinct_colours(tmp_path):
    samples = det_samples(2, 'bitmap')
    samples[1].gt_instances.labels = torch.tensor([15])
    samples[0].gt_instances.labels = torch.tensor([14])
    path = save_det_pairs_figure(str(tmp_path / 'two.png'), grey_batch(2), samples, grey_batch(2), samples, MEAN, STD)
    picture = png(path)
    assert pixels_near(picture, label_colour(0)) > 0 and pixels_near(picture, label_colour(1)) > 0


def test_seg_figure_shows_the_label_maps_in_palette_colours(tmp_path):
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (250, 20, 200)
    labels = torch.zeros(4, 1, H, W, dtype=torch.uint8)
    labels[:, :, 8:24, 10:30] = 1
    path = save_seg_pairs_figure(str(tmp_path / 'seg.png'), grey_batch(4), labels, grey_batch(4), labels, MEAN, STD,
                                 palette.flatten().tolist(), num_pairs=2)
    picture = png(path)
    assert picture.shape[:2] == (round((2 * 2.4 + 0.8) * DPI), round(8 * 2.0 * DPI))
    assert pixels_near(picture, palette[1]) > 0
    labels.zero_()
    blank = png(save_seg_pairs_figure(str(tmp_path / 'blank.png'), grey_batch(4), labels, grey_batch(4), labels,
                                      MEAN, STD, palette.flatten().tolist(), num_pairs=2))
    assert pixels_near(blank, palette[1]) == 0


def test_det_figure_accepts_samples_without_masks_or_objects(tmp_path):
    samples = det_samples(2, 'bitmap')
    for sample in samples:
        del sample.gt_instances.masks
    path = save_det_pairs_figure(str(tmp_path / 'nomask.png'), grey_batch(2), samples, grey_batch(2),
                                 det_samples(2, 'polygon', with_objects=False), MEAN, STD)
    assert pixels_near(png(path), label_colour(0)) > 0
