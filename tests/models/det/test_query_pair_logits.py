"""QueryPairLogits: the matched queries' class scores of a DETR-style head."""
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from ipswap_mm.core import pair_kl_divergence
from ipswap_mm.models.det import QueryPairLogits
from ipswap_mm.models.det.query_pair_logits import is_query_head

NUM_CLASSES, QUERIES, DIMS, LAYERS = 4, 7, 16, 3


@pytest.fixture(autouse=True)
def mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def detr_head(sigmoid: bool = False):
    """A stock ``DETRHead`` on 16-dim embeddings: softmax over C + 1 (DETR) or focal-loss sigmoids."""
    loss_cls = (dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0) if sigmoid else
                dict(type='CrossEntropyLoss', bg_cls_weight=0.1, use_sigmoid=False, loss_weight=1.0, class_weight=1.0))
    cls_cost = dict(type='FocalLossCost', weight=2.0) if sigmoid else dict(type='ClassificationCost', weight=1.0)
    head = MODELS.build(dict(
        type='DETRHead', num_classes=NUM_CLASSES, embed_dims=DIMS, loss_cls=loss_cls,
        loss_bbox=dict(type='L1Loss', loss_weight=5.0), loss_iou=dict(type='GIoULoss', loss_weight=2.0),
        train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
            cls_cost, dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0)]))))
    return head.train()


def samples(boxes_per_image, labels_per_image, size=64):
    out = []
    for boxes, labels in zip(boxes_per_image, labels_per_image):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                           labels=torch.tensor(labels, dtype=torch.long))
        out.append(sample)
    return out


BOXES = [[[4, 4, 30, 30], [34, 8, 60, 40]], [[10, 12, 50, 56]], [[2, 2, 20, 20], [22, 30, 44, 60], [40, 2, 62, 24]],
         []]
LABELS = [[1, 3], [1], [0, 2, 2], []]


def run_loss(head, batch):
    hidden = torch.randn(LAYERS, len(batch), QUERIES, DIMS, requires_grad=True)
    losses = head.loss(hidden, batch)
    return hidden, losses


@pytest.mark.parametrize('sigmoid', [False, True])
def test_matched_queries_of_the_last_layer_carry_their_box_class(sigmoid):
    head = detr_head(sigmoid)
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    batch = samples(BOXES, LABELS)
    hidden, _ = run_loss(head, batch)
    logits, labels = reader(batch)
    channels = NUM_CLASSES if sigmoid else NUM_CLASSES + 1
    assert reader.use_sigmoid is sigmoid and reader.num_classes == NUM_CLASSES
    assert logits.shape == (4, channels, QUERIES) and labels.shape == (4, QUERIES)
    # the last decoder layer's scores, not an earlier layer's
    torch.testing.assert_close(logits, head.fc_cls(hidden[-1]).transpose(1, 2))
    assert not torch.allclose(logits, head.fc_cls(hidden[0]).transpose(1, 2))
    for image, classes in enumerate(LABELS):  # one query per box, with the box's class; the rest outside [0, K)
        matched = labels[image][labels[image] < NUM_CLASSES]
        assert sorted(matched.tolist()) == sorted(classes)
        assert (labels[image][labels[image] >= NUM_CLASSES] == NUM_CLASSES).all()


def test_the_matching_is_the_heads_own():
    """The labelled queries are those the head's loss matched: its ``get_targets`` on the same scores."""
    head = detr_head()
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    batch = samples(BOXES, LABELS)
    hidden, _ = run_loss(head, batch)
    _, labels = reader(batch)
    reader.remove()
    scores = head.fc_cls(hidden[-1])
    boxes = head.fc_reg(head.activate(head.reg_ffn(hidden[-1]))).sigmoid()
    expected = head.get_targets(list(scores), list(boxes), [s.gt_instances for s in batch],
                                [s.metainfo for s in batch])[0]
    assert torch.equal(labels, torch.stack(expected))


def test_gradient_reaches_only_matched_queries_of_the_last_layer():
    head = detr_head()
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    batch = samples(BOXES, LABELS)
    hidden = torch.randn(LAYERS, 4, QUERIES, DIMS)
    hidden.requires_grad_(True)
    head.loss(hidden, batch)
    logits, labels = reader(batch)
    pair_kl_divergence(logits, labels, NUM_CLASSES, temperature=1.0).backward()
    grad = hidden.grad.abs().sum(-1)  # (L, N, Q)
    assert grad[:-1].sum() == 0
    matched = labels < NUM_CLASSES
    assert (grad[-1][~matched] == 0).all()
    # pair 0 shares class 1 (one box each): the student's matched query gets a gradient
    assert grad[-1][:2][matched[:2]].sum() > 0


def test_other_calls_of_the_single_layer_loss_are_not_taken():
    """An encoder-proposal loss (Deformable DETR, DINO) runs after the decoder layers on a separate
    tensor; the reader keeps the last decoder layer."""
    head = detr_head()
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    batch = samples(BOXES, LABELS)
    hidden, _ = run_loss(head, batch)
    proposals = torch.randn(4, 11, NUM_CLASSES + 1)
    head.loss_by_feat_single(proposals, torch.rand(4, 11, 4), batch_gt_instances=[s.gt_instances for s in batch],
                             batch_img_metas=[s.metainfo for s in batch])
    logits, _ = reader(batch)
    torch.testing.assert_close(logits, head.fc_cls(hidden[-1]).transpose(1, 2))


def test_nothing_captured_is_an_error_and_remove_restores_the_head():
    head = detr_head()
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    with pytest.raises(RuntimeError, match='DETRHead computed no loss with a matching'):
        reader(samples(BOXES, LABELS))
    reader.remove()
    assert 'loss_by_feat_single' not in head.__dict__ and 'get_targets' not in head.__dict__
    assert not head._forward_hooks
    run_loss(head, samples(BOXES, LABELS))
    with pytest.raises(RuntimeError):
        reader(samples(BOXES, LABELS))


def test_is_query_head():
    assert is_query_head(detr_head())
    retina = MODELS.build(dict(type='RetinaHead', num_classes=2, in_channels=8, feat_channels=8, stacked_convs=1,
                               anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                                     scales_per_octave=1, ratios=[1.0], strides=[8]),
                               bbox_coder=dict(type='DeltaXYWHBBoxCoder')))
    assert not is_query_head(retina)


def test_ddq_detr_is_refused_naming_the_head():
    """DDQ-DETR computes its decoder losses through its own matching of distinct queries."""
    head = MODELS.build(dict(type='DDQDETRHead', num_classes=5, sync_cls_avg_factor=True,
                             loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25)))
    detector = torch.nn.Module()
    detector.bbox_head = head
    with pytest.raises(TypeError, match='DDQDETRHead'):
        QueryPairLogits(detector)


def test_the_query_head_of_a_staged_roi_head_is_its_last_stage():
    """Sparse R-CNN, QueryInst: six DIIHead stages; the last one's matching and scores are read."""
    from types import SimpleNamespace

    from ipswap_mm.models.det.query_pair_logits import query_head
    stages = torch.nn.ModuleList([detr_head(), detr_head()])
    assert query_head(SimpleNamespace(roi_head=SimpleNamespace(bbox_head=stages))) is stages[1]


def test_a_loss_computed_outside_training_is_not_read():
    head, batch = detr_head(), samples(BOXES, LABELS)
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    head.eval()
    run_loss(head, batch)
    with pytest.raises(RuntimeError, match='computed no loss with a matching'):
        reader(batch)
    reader.remove()


def test_a_new_training_forward_drops_the_previous_match():
    head, batch = detr_head(), samples(BOXES, LABELS)
    reader = QueryPairLogits(SimpleNamespace(bbox_head=head))
    run_loss(head, batch)  # matched, but never read
    head(torch.randn(LAYERS, len(batch), QUERIES, DIMS))  # the next training forward: no loss of its own
    with pytest.raises(RuntimeError, match='computed no loss with a matching'):
        reader(batch)
    reader.remove()
