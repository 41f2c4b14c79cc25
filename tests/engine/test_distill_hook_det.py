"""IPSDistillHook on MMDetection detectors (the segmentation side is in test_distill_hook.py)."""
import os.path as osp

import pytest
import torch
from mmdet.datasets.samplers import AspectRatioBatchSampler
from mmdet.registry import MODELS
from mmengine.config import Config
from torch.utils.data import DataLoader

from ipswap_mm.engine.distill_hook import IPSDistillHook
from ipswap_mm.engine.setup_checks import check_pair_dataloader
from tests.engine.test_distill_hook import Indices, fake_runner, pair_loader
from tests.models.det.test_det_pair_logits import (
    FASTER_RCNN,
    MASK_RCNN,
    NUM_CLASSES,
    RETINANET,
    STOCK_CONFIGS,
    mmdet_scope,  # noqa: F401 - autouse fixture
    run_loss,
    shared_class_batch,
    tiny_detector,
)

# (config, classifier whose weight the pair loss must reach, sigmoid scores, logit channels)
DETECTORS = {
    'faster_rcnn': (FASTER_RCNN, 'roi_head.bbox_head.fc_cls', False, NUM_CLASSES + 1),
    'retinanet': (RETINANET, 'bbox_head.retina_cls', True, NUM_CLASSES),
    'mask_rcnn': (MASK_RCNN, 'roi_head.bbox_head.fc_cls', False, NUM_CLASSES + 1),
}


def attached_hook(model, monkeypatch):
    """``IPSDistillHook`` set up for ``model`` as before training, and the list of its pair loss's calls."""
    hook = IPSDistillHook(loss=dict(type='PairKLDivLoss', temperature=4.0, teacher='confidence'))
    hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    calls = []
    forward = hook.loss.forward
    hook.loss.forward = lambda *args: calls.append(args) or forward(*args)
    return hook, calls


@pytest.mark.parametrize('name', sorted(DETECTORS))
def test_adds_a_finite_pair_loss_that_trains_the_classifier(name, monkeypatch):
    config, classifier, sigmoid, channels = DETECTORS[name]
    model = tiny_detector(config)
    keys = set(model.state_dict())
    hook, calls = attached_hook(model, monkeypatch)

    losses, samples = run_loss(model, shared_class_batch(with_masks=name == 'mask_rcnn'))
    assert [s.ips_pair_index for s in samples] == [0, 0, 1, 1]
    assert 'loss_ips_kl' in losses and torch.isfinite(losses['loss_ips_kl'])
    (logits, labels, num_classes, uses_sigmoid), = calls
    assert uses_sigmoid is sigmoid and num_classes == NUM_CLASSES and logits.shape[:2] == (4, channels)
    assert labels.shape == (4, logits.shape[2])
    model.zero_grad()
    losses['loss_ips_kl'].backward()
    weight = model.get_submodule(classifier).weight
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert set(model.state_dict()) == keys and type(model).__name__ == type(tiny_detector(config)).__name__

    hook.after_train(None)
    losses, _ = run_loss(model, shared_class_batch(with_masks=name == 'mask_rcnn'))
    assert 'loss_ips_kl' not in losses


def test_pair_loss_is_zero_without_a_shared_class(monkeypatch):
    model = tiny_detector(RETINANET, swap=True)
    hook = IPSDistillHook()
    hook.before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))
    data = shared_class_batch()
    for index, sample in enumerate(data['data_samples']):
        sample.gt_instances.labels[:] = index  # no two views share a class
    model.data_preprocessor.batch_augments[0].patch_swap.swap_prob = 0.0
    losses, _ = run_loss(model, data)
    assert losses['loss_ips_kl'].item() == 0.0


def tiny_detr():
    """The stock DETR with a ResNet-18 backbone, one encoder and one decoder layer, DetPatchSwap."""
    cfg = Config.fromfile(osp.join(STOCK_CONFIGS, 'detr/detr_r50_8xb2-150e_coco.py')).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.in_channels = [512]
    cfg.encoder.num_layers = cfg.decoder.num_layers = 1
    cfg.bbox_head.num_classes = NUM_CLASSES
    cfg.data_preprocessor.batch_augments = [dict(type='DetPatchSwap', patch_size=16, swap_prob=1.0)]
    return MODELS.build(cfg)


def tiny_sparse_rcnn():
    """The stock Sparse R-CNN (six stages of DIIHead) with a ResNet-18 backbone, 20 queries, DetPatchSwap."""
    cfg = Config.fromfile(osp.join(STOCK_CONFIGS, 'sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py')).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.neck.in_channels = [64, 128, 256, 512]
    cfg.rpn_head.num_proposals = 20
    for head in cfg.roi_head.bbox_head:
        head.num_classes = NUM_CLASSES
    cfg.data_preprocessor.batch_augments = [dict(type='DetPatchSwap', patch_size=16, swap_prob=1.0)]
    model = MODELS.build(cfg)
    model.init_weights()  # as the runner does: the box deltas start at zero, not at random
    return model


# (builder, the last decoder layer's or stage's classifier, sigmoid scores, logit channels, queries)
QUERY_DETECTORS = {
    'detr': (tiny_detr, 'bbox_head.fc_cls', False, NUM_CLASSES + 1, 100),
    'sparse_rcnn': (tiny_sparse_rcnn, 'roi_head.bbox_head.5.fc_cls', True, NUM_CLASSES, 20),
}


@pytest.mark.parametrize('name', sorted(QUERY_DETECTORS))
def test_query_detector_pair_loss_reads_the_matched_queries(name, monkeypatch):
    build, classifier, sigmoid, channels, queries = QUERY_DETECTORS[name]
    model = build()
    hook, calls = attached_hook(model, monkeypatch)
    losses, samples = run_loss(model, shared_class_batch())
    (logits, labels, num_classes, uses_sigmoid), = calls
    assert uses_sigmoid is sigmoid and logits.shape == (4, channels, queries) and labels.shape == (4, queries)
    for image, sample in enumerate(samples):  # one query per box, labelled with its class
        matched = labels[image][labels[image] < NUM_CLASSES]
        assert sorted(matched.tolist()) == sorted(sample.gt_instances.labels.tolist())
    assert torch.isfinite(losses['loss_ips_kl']) and losses['loss_ips_kl'] > 0
    model.zero_grad()
    losses['loss_ips_kl'].backward()
    assert model.get_submodule(classifier).weight.grad.abs().sum() > 0
    if name == 'sparse_rcnn':  # an earlier stage's classifier gets nothing from the pair loss
        grad = model.roi_head.bbox_head[0].fc_cls.weight.grad
        assert grad is None or grad.abs().sum() == 0
    head = model.get_submodule(classifier.rsplit('.', 1)[0])
    hook.after_train(None)
    assert not {'get_targets', 'loss_by_feat_single', 'loss_and_target'} & set(head.__dict__)
    assert not head._forward_hooks


def test_unsupported_head_is_a_type_error_naming_it(monkeypatch):
    cfg = Config.fromfile(osp.join(STOCK_CONFIGS, 'centernet/centernet_r18_8xb16-crop512-140e_coco.py')).model
    cfg.backbone.init_cfg = None
    cfg.data_preprocessor.batch_augments = [dict(type='DetPatchSwap')]
    model = MODELS.build(cfg)
    with pytest.raises(TypeError, match='dense head CenterNetHead has no prior generator'):
        IPSDistillHook().before_train(fake_runner(model, pair_loader(monkeypatch=monkeypatch)))


def test_missing_swap_names_the_key(monkeypatch):
    with pytest.raises(ValueError, match='DetPatchSwap'):
        IPSDistillHook().before_train(fake_runner(tiny_detector(RETINANET, swap=False),
                                                  pair_loader(monkeypatch=monkeypatch)))


def test_aspect_ratio_batch_sampler_names_the_key(monkeypatch):
    sampler = pair_loader(monkeypatch=monkeypatch).sampler
    loader = DataLoader(Indices(), batch_sampler=AspectRatioBatchSampler(sampler, batch_size=2))
    with pytest.raises(ValueError, match='batch_sampler=None'):
        check_pair_dataloader(loader)
