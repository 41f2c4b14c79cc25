import os.path as osp
from types import SimpleNamespace

import mmdet
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes, bbox2roi
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from ipswap_mm.core import pair_kl_divergence
from ipswap_mm.models.det import DensePairLogits, RoIPairLogits
from ipswap_mm.models.det.det_pair_logits import _leading_rows

STOCK_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
FASTER_RCNN = 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
RETINANET = 'retinanet/retinanet_r50_fpn_1x_coco.py'
MASK_RCNN = 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
CASCADE_RCNN = 'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
NUM_CLASSES = 5


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Build from MMDetection's registries, as a config's ``default_scope='mmdet'`` does, and
    restore the previous default scope afterwards (other test modules build MMSegmentation models)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def tiny_detector(config: str, swap: bool = True, patch_size: int = 16):
    """The stock model of ``config`` with a ResNet-18 backbone, 32-channel FPN and heads, 5 classes,
    no pretrained weights; DetPatchSwap (swap_prob=1) in the data preprocessor when ``swap``."""
    cfg = Config.fromfile(osp.join(STOCK_CONFIGS, config)).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.update(in_channels=[64, 128, 256, 512], out_channels=32)
    if 'roi_head' in cfg:
        cfg.rpn_head.update(in_channels=32, feat_channels=32)
        cfg.roi_head.bbox_roi_extractor.out_channels = 32
        heads = cfg.roi_head.bbox_head if isinstance(cfg.roi_head.bbox_head, list) else [cfg.roi_head.bbox_head]
        for head in heads:
            head.update(in_channels=32, fc_out_channels=64, num_classes=NUM_CLASSES)
        if 'mask_head' in cfg.roi_head:
            cfg.roi_head.mask_roi_extractor.out_channels = 32
            cfg.roi_head.mask_head.update(in_channels=32, conv_out_channels=32, num_classes=NUM_CLASSES)
    else:
        cfg.bbox_head.update(in_channels=32, feat_channels=32, stacked_convs=1, num_classes=NUM_CLASSES)
    if swap:
        cfg.data_preprocessor.batch_augments = [
            dict(type='DetPatchSwap', patch_size=patch_size, swap_prob=1.0, swap_ratio=0.5)]
    return MODELS.build(cfg)


def det_batch(boxes_per_image, labels_per_image, height=64, width=96, with_masks=False, seed=0) -> dict:
    """A dataloader batch as ``PackDetInputs`` makes it: uint8-range images, HorizontalBoxes."""
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for boxes, labels in zip(boxes_per_image, labels_per_image):
        sample = DetDataSample()
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width), scale_factor=(1.0, 1.0)))
        tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(tensor), labels=torch.tensor(labels).long())
        sample.ignored_instances = InstanceData(bboxes=HorizontalBoxes(torch.zeros(0, 4)),
                                                labels=torch.zeros(0, dtype=torch.long))
        if with_masks:
            masks = np.zeros((len(boxes), height, width), np.uint8)
            for mask, (x1, y1, x2, y2) in zip(masks, boxes):
                mask[int(y1):int(y2), int(x1):int(x2)] = 1
            sample.gt_instances.masks = BitmapMasks(masks, height, width)
            sample.ignored_instances.masks = BitmapMasks(np.zeros((0, height, width), np.uint8), height, width)
        samples.append(sample)
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, height, width))).to(torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def shared_class_batch(with_masks=False) -> dict:
    """Two pairs; each pair shares class 1 (and pair 1 class 3 too)."""
    boxes = [[[4, 4, 40, 40], [30, 10, 90, 60]], [[50, 8, 94, 50]],
             [[0, 0, 64, 64], [60, 30, 80, 60]], [[10, 20, 70, 62], [2, 2, 30, 30]]]
    labels = [[1, 2], [1], [3, 1], [1, 3]]
    return det_batch(boxes, labels, with_masks=with_masks)


class Capture:
    """Record the output of one module's forward."""

    def __init__(self, module):
        self.output = None
        self.handle = module.register_forward_hook(lambda _, args, output: setattr(self, 'output', output))


def run_loss(model, data):
    model.train()
    data = model.data_preprocessor(data, training=True)
    return model(**data, mode='loss'), data['data_samples']


def test_roi_logits_classify_every_ground_truth_box():
    model = tiny_detector(FASTER_RCNN, swap=False)
    extractor = RoIPairLogits(model)
    features = Capture(model.neck)
    boxes = [[[4, 4, 40, 40], [30, 10, 90, 60], [0, 0, 8, 8]], [[50, 8, 94, 50]]]
    _, samples = run_loss(model, det_batch(boxes, [[1, 2, 4], [0]]))
    logits, labels = extractor(samples)
    assert logits.shape == (2, NUM_CLASSES + 1, 3) and extractor.use_sigmoid is False
    assert labels.tolist() == [[1, 2, 4], [0, -1, -1]]  # padded with -1
    gt_boxes = [s.gt_instances.bboxes for s in samples]
    expected = model.roi_head._bbox_forward(features.output, bbox2roi(gt_boxes))['cls_score']
    torch.testing.assert_close(logits[0, :, :3].T, expected[:3])
    torch.testing.assert_close(logits[1, :, :1].T, expected[3:])
    assert logits.requires_grad


def test_dense_logits_read_each_box_centre_on_its_level():
    model = tiny_detector(RETINANET, swap=False)
    extractor = DensePairLogits(model)
    scores = Capture(model.bbox_head)
    # sqrt(area) 32 -> level 0 (stride 8); 78 -> level 1 (stride 16); 8 -> level 0 (clamped);
    # a box reaching beyond the 96 x 96 image: centre x 104, y 100 -> row 12, column 13 of the 12 x 12
    # level-0 map, clamped to its last cell (11, 11)
    boxes = [[[8, 8, 40, 40], [0, 0, 64, 96]], [[40, 40, 48, 48], [88, 84, 120, 116]]]
    _, samples = run_loss(model, det_batch(boxes, [[1, 2], [4, 3]], height=96, width=96))
    logits, labels = extractor(samples)
    priors, channels = extractor.priors, NUM_CLASSES
    assert extractor.use_sigmoid is True and priors == 9
    assert logits.shape == (2, channels, 2 * priors)
    assert labels.tolist() == [[1] * priors + [2] * priors, [4] * priors + [3] * priors]
    level_maps = scores.output[0]
    assert level_maps[0].shape[-2:] == (12, 12)
    expected = [level_maps[0][0, :, 3, 3], level_maps[1][0, :, 3, 2], level_maps[0][1, :, 5, 5],
                level_maps[0][1, :, 11, 11]]
    got = [logits[0, :, :priors], logits[0, :, priors:], logits[1, :, :priors], logits[1, :, priors:]]
    for want, have in zip(expected, got):
        torch.testing.assert_close(have.T.reshape(-1), want)


def test_dense_logits_clamp_to_each_batch_geometry():
    """One extractor on batches of two image sizes (its level table is kept per map geometry):
    a box centred beyond the image is read at the last cell of that batch's map."""
    model = tiny_detector(RETINANET, swap=False)
    extractor = DensePairLogits(model)
    scores = Capture(model.bbox_head)
    for height, width, (row, column) in ((96, 96, (11, 11)), (64, 96, (7, 11)), (96, 96, (11, 11))):
        _, samples = run_loss(model, det_batch([[[88, 84, 120, 116]], [[8, 8, 40, 40]]], [[1], [2]],
                                               height=height, width=width))
        logits, _ = extractor(samples)
        level0 = scores.output[0][0]
        assert level0.shape[-2:] == (height // 8, width // 8)
        torch.testing.assert_close(logits[0, :, :extractor.priors].T.reshape(-1), level0[0, :, row, column])


def test_images_without_objects_give_only_padding():
    model = tiny_detector(FASTER_RCNN, swap=False)
    extractor = RoIPairLogits(model)
    _, samples = run_loss(model, det_batch([[], [[4, 4, 40, 40]]], [[], [1]]))
    logits, labels = extractor(samples)
    assert logits.shape == (2, NUM_CLASSES + 1, 1) and labels.tolist() == [[-1], [1]]


def test_nothing_captured_is_an_error():
    extractor = DensePairLogits(tiny_detector(RETINANET, swap=False))
    with pytest.raises(RuntimeError, match='the dense head produced no class maps in this training step'):
        extractor(det_batch([[[0, 0, 8, 8]]], [[0]])['data_samples'])


class _TwoLevelSoftmaxHead(torch.nn.Module):
    """The attributes DensePairLogits reads, as SSDHead has them: 2 and 3 priors, softmax over C + 1."""
    num_classes, cls_out_channels, use_sigmoid_cls, num_base_priors = 3, 4, False, [2, 3]

    def __init__(self):
        super().__init__()
        self.prior_generator = SimpleNamespace(strides=[(8, 8), (16, 16)])


def test_dense_head_with_per_level_prior_counts_pads_the_priors_a_level_lacks():
    detector = torch.nn.Module()
    detector.bbox_head = _TwoLevelSoftmaxHead()
    extractor = DensePairLogits(detector)
    assert extractor.priors == 3 and extractor.use_sigmoid is False
    maps = [torch.randn(1, 2 * 4, 8, 8), torch.randn(1, 3 * 4, 4, 4)]
    extractor._class_maps.keep((maps, None))
    # sqrt(area) 16 -> level 0, centre (12, 12) -> cell (1, 1); 64 -> level 1, centre (32, 32) -> cell (2, 2)
    samples = det_batch([[[4, 4, 20, 20], [0, 0, 64, 64]]], [[1, 2]], height=64, width=64)['data_samples']
    logits, labels = extractor(samples)
    assert labels.tolist() == [[1, 1, -1, 2, 2, 2]]  # level 0's missing third prior weighs nothing
    torch.testing.assert_close(logits[0, :, :2].T.reshape(-1), maps[0][0, :, 1, 1])
    torch.testing.assert_close(logits[0, :, 3:].T.reshape(-1), maps[1][0, :, 2, 2])


def test_yolov3_reads_the_class_logits_of_each_prior_on_levels_listed_coarsest_first():
    """YOLOv3's maps hold, per prior, 4 box values, the objectness and C class logits, and its
    levels come as strides 32, 16, 8: a box is read on the level its size gives, by stride."""
    detector = torch.nn.Module()
    detector.bbox_head = MODELS.build(dict(
        type='YOLOV3Head', num_classes=NUM_CLASSES, in_channels=[8, 8, 8], out_channels=[8, 8, 8],
        anchor_generator=dict(type='YOLOAnchorGenerator', strides=[32, 16, 8], base_sizes=[
            [(116, 90), (156, 198), (373, 326)], [(30, 61), (62, 45), (59, 119)], [(10, 13), (16, 30), (33, 23)]])))
    extractor = DensePairLogits(detector)
    assert extractor.use_sigmoid is True and extractor.priors == 3 and extractor.channels == NUM_CLASSES
    size = 256
    maps = [torch.randn(1, 3 * (5 + NUM_CLASSES), size // stride, size // stride) for stride in (32, 16, 8)]
    extractor._class_maps.keep((maps,))
    # sqrt(area) 32 -> the finest level (stride 8, listed last): centre (16, 16) -> cell (2, 2);
    # 160 -> the coarsest (stride 32, listed first): centre (120, 120) -> cell (3, 3)
    samples = det_batch([[[0, 0, 32, 32], [40, 40, 200, 200]]], [[1, 3]], height=size, width=size)['data_samples']
    logits, labels = extractor(samples)
    assert logits.shape == (1, NUM_CLASSES, 6) and labels.tolist() == [[1, 1, 1, 3, 3, 3]]
    classes = slice(5, None)  # after x, y, w, h and the objectness
    torch.testing.assert_close(logits[0, :, :3].T, maps[2][0, :, 2, 2].view(3, -1)[:, classes])
    torch.testing.assert_close(logits[0, :, 3:].T, maps[0][0, :, 3, 3].view(3, -1)[:, classes])


def test_sigmoid_roi_classifier_is_rejected_naming_the_head():
    model = tiny_detector(FASTER_RCNN, swap=False)
    model.roi_head.bbox_head.loss_cls.use_sigmoid = True
    with pytest.raises(TypeError, match='Shared2FCBBoxHead'):
        RoIPairLogits(model)


def test_roi_head_without_a_box_forward_on_rois_is_rejected_naming_it():
    model = tiny_detector(FASTER_RCNN, swap=False)
    model.roi_head._bbox_forward = lambda features, proposals: None
    with pytest.raises(TypeError, match=r'StandardRoIHead has no _bbox_forward\(\.\.\., rois\)'):
        RoIPairLogits(model)


def test_extractors_leave_no_hook_behind():
    retinanet, faster_rcnn = tiny_detector(RETINANET, swap=False), tiny_detector(FASTER_RCNN, swap=False)
    shared = tiny_detector(MASK_RCNN, swap=False)
    shared.roi_head.share_roi_extractor = True
    for model, extractor in ((retinanet, DensePairLogits), (faster_rcnn, RoIPairLogits), (shared, RoIPairLogits)):
        extractor(model).remove()
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
        assert not any('_bbox_forward' in vars(m) for m in model.modules())  # the class's method again


def roi_losses(model, data, seed=0) -> dict:
    torch.manual_seed(seed)  # the RPN's and the RoI head's samplers draw from the global generator
    losses, _ = run_loss(model, data)
    return {key: value for key, value in losses.items() if 'loss' in key}


@pytest.mark.parametrize('config', [FASTER_RCNN, MASK_RCNN, CASCADE_RCNN])
def test_ground_truth_boxes_ride_along_without_changing_the_heads_losses(config):
    """The boxes join the head's own RoIs in one pass: its losses stay exactly what they are
    without the hooks, and the boxes' scores are those of a separate pass over them."""
    model = tiny_detector(config, swap=False)
    data = shared_class_batch(with_masks=config == MASK_RCNN)
    plain = roi_losses(model, data)
    extractor = RoIPairLogits(model)
    features = Capture(model.neck)
    hooked = roi_losses(model, data)
    logits, labels = extractor(data['data_samples'])
    assert plain.keys() == hooked.keys()
    for key in plain:
        torch.testing.assert_close(hooked[key], plain[key], msg=key)
    rois = bbox2roi([s.gt_instances.bboxes for s in data['data_samples']])
    stage = (len(model.roi_head.bbox_head) - 1,) if config == CASCADE_RCNN else ()
    expected = model.roi_head._bbox_forward(*stage, features.output, rois)['cls_score']
    torch.testing.assert_close(logits.transpose(1, 2)[labels >= 0], expected)
    model.eval()  # a prediction afterwards sees no ground-truth RoIs: the same as with no hooks
    hooked_predictions = predict(model, data)
    extractor.remove()
    for hooked_prediction, plain_prediction in zip(hooked_predictions, predict(model, data)):
        torch.testing.assert_close(hooked_prediction.pred_instances.bboxes, plain_prediction.pred_instances.bboxes)
        torch.testing.assert_close(hooked_prediction.pred_instances.scores, plain_prediction.pred_instances.scores)


def predict(model, data) -> list:
    with torch.no_grad():
        return model(**model.data_preprocessor(data, training=False), mode='predict')


def test_a_head_sharing_box_features_with_the_mask_branch_gets_only_its_own_rows():
    """C4 Mask R-CNN: the mask branch indexes the box features by the head's own RoIs."""
    model = tiny_detector(MASK_RCNN, swap=False)
    model.roi_head.share_roi_extractor = True  # mask features = box features[positives]
    model.roi_head.train_cfg.mask_size = 14  # the mask head upsamples the 7x7 box features once
    data = shared_class_batch(with_masks=True)
    plain = roi_losses(model, data)
    extractor = RoIPairLogits(model)
    features = Capture(model.neck)
    hooked = roi_losses(model, data)
    logits, labels = extractor(data['data_samples'])
    for key in plain:
        torch.testing.assert_close(hooked[key], plain[key], msg=key)
    rois = bbox2roi([s.gt_instances.bboxes for s in data['data_samples']])
    expected = model.roi_head._bbox_forward(features.output, rois)['cls_score']
    torch.testing.assert_close(logits.transpose(1, 2)[labels >= 0], expected)


def test_nested_box_head_outputs_are_cut_to_the_heads_rows():
    """SABL's box head returns its deltas as nested tuples of per-RoI tensors."""
    rows, own = 7, 5
    value = dict(cls_score=torch.zeros(rows, 3), bbox_pred=((torch.ones(rows, 2), torch.ones(rows, 4)),
                                                          (torch.ones(rows, 2), [torch.ones(rows)])),
                 scalar=torch.tensor(1.0), other=torch.zeros(3, 2))
    cut = {key: _leading_rows(part, rows, own) for key, part in value.items()}
    assert cut['cls_score'].shape == (own, 3)
    (a, b), (c, (d,)) = cut['bbox_pred']
    assert [t.shape[0] for t in (a, b, c, d)] == [own] * 4 and isinstance(cut['bbox_pred'][1][1], list)
    assert cut['scalar'].dim() == 0 and cut['other'].shape == (3, 2)


@pytest.mark.parametrize('config', ['faster_rcnn/faster-rcnn_r50_fpn_ohem_1x_coco.py',
                                    'pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py'])
def test_a_sampler_scoring_rois_without_gradients_is_not_the_training_forward(config):
    """OHEM's and PISA's samplers run ``_bbox_forward`` on one image's features under no_grad
    before the head's training forward; the boxes ride along with the training forward only."""
    model = tiny_detector(config, swap=False)
    extractor = RoIPairLogits(model)
    calls = []
    head_forward = extractor._bbox_forward_of_head

    def spy(x, rois, *args, **kwargs):
        calls.append((torch.is_grad_enabled(), x[0].shape[0]))
        return head_forward(x, rois, *args, **kwargs)

    extractor._bbox_forward_of_head = spy
    features = Capture(model.neck)
    boxes = [[[4, 4, 140, 140], [130, 10, 290, 260]], [[50, 8, 294, 250]], [[0, 0, 164, 164], [160, 30, 280, 260]],
             [[10, 20, 270, 262], [2, 2, 130, 130]]]
    data = det_batch(boxes, [[1, 2], [1], [3, 1], [1, 3]], height=320, width=320)
    torch.manual_seed(0)
    run_loss(model, data)
    assert (False, 1) in calls and calls[-1] == (True, 4)  # the samplers ran, then the training forward
    logits, labels = extractor(data['data_samples'])
    assert logits.requires_grad
    extractor._bbox_forward_of_head = head_forward
    rois = bbox2roi([s.gt_instances.bboxes for s in data['data_samples']])
    expected = model.roi_head._bbox_forward(features.output, rois)['cls_score']
    torch.testing.assert_close(logits.transpose(1, 2)[labels >= 0], expected)


def test_a_head_that_outputs_probabilities_gives_their_logits():
    """TOOD's classification maps are sigmoid probabilities (``loss_cls.activated``)."""
    cfg = Config.fromfile(osp.join(STOCK_CONFIGS, 'tood/tood_r50_fpn_1x_coco.py')).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.update(in_channels=[64, 128, 256, 512], out_channels=32)
    cfg.bbox_head.update(in_channels=32, feat_channels=32, stacked_convs=2, num_classes=NUM_CLASSES)
    model = MODELS.build(cfg)
    MessageHub.get_current_instance().update_info('epoch', 0)  # TOOD's loss reads it, as a runner sets it
    extractor = DensePairLogits(model)
    scores = Capture(model.bbox_head)
    _, samples = run_loss(model, det_batch([[[8, 8, 40, 40]], [[40, 40, 48, 48]]], [[1], [4]], height=96, width=96))
    logits, _ = extractor(samples)
    assert extractor.activated
    probabilities = scores.output[0][0]
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    # box (8, 8, 40, 40): level 0 (stride 8), centre cell (3, 3) of image 0
    torch.testing.assert_close(logits[0, :, 0].sigmoid(), probabilities[0, :, 3, 3])


class ProbabilityHead(torch.nn.Module):
    """TOOD-like: one level (stride 8), one prior, 2 classes, sigmoid probabilities as outputs."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps
        self.num_classes = self.cls_out_channels = 2
        self.prior_generator = SimpleNamespace(strides=[(8, 8)])
        self.loss_cls = SimpleNamespace(activated=True)

    def forward(self, x):
        return ([self.maps * x],)


def test_saturated_probabilities_give_finite_logits_and_gradients():
    maps = torch.zeros(2, 2, 4, 4)
    maps[:, 0] = 1.0  # a confident class 0: exactly 1 in float32, class 1 exactly 0
    head = ProbabilityHead(maps).train()
    reader = DensePairLogits(SimpleNamespace(bbox_head=head))
    x = torch.ones(1, requires_grad=True)
    head(x)
    samples = [SimpleNamespace(gt_instances=SimpleNamespace(bboxes=torch.tensor([[0.0, 0.0, 16.0, 16.0]]),
                                                            labels=torch.tensor([0]))) for _ in range(2)]
    logits, labels = reader(samples)
    assert torch.isfinite(logits).all()
    assert logits[0, 0, 0].item() == pytest.approx(np.log((1 - 1e-6) / 1e-6), rel=1e-3)
    loss = pair_kl_divergence(logits, labels, 2, use_sigmoid=True)
    gradient, = torch.autograd.grad(loss + logits.sum() * 0, x)
    assert torch.isfinite(gradient).all()
