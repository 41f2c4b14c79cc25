import pytest
import torch

from ipswap_mm.models.seg.seg_pair_logits import SegPairLogits, head_output_logits


def test_head_output_logits_of_heads_without_conv_seg():
    torch.manual_seed(0)
    dense = torch.randn(2, 5, 4, 4)
    assert head_output_logits(dense, 5, 'Head') is dense  # Segmenter: the class map itself
    assert head_output_logits([torch.randn(2, 5, 4, 4), dense], 5, 'Head') is dense  # K-Net: the last stage
    # MaskFormer: last layer's per-pixel class distribution, as its semantic inference computes it
    scores = [torch.randn(2, 3, 6), torch.randn(2, 3, 6)]
    masks = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)]
    logits = head_output_logits((scores, masks), 5, 'Head')
    expected = torch.zeros(2, 5, 4, 4)
    for q in range(3):
        expected += scores[1].softmax(-1)[:, q, :5, None, None] * masks[1][:, q, None].sigmoid()
    assert torch.allclose(logits.softmax(1), expected / expected.sum(1, keepdim=True), atol=1e-6)
    stacked = head_output_logits((torch.stack(scores), torch.stack(masks)), 5, 'Head')  # MaskFormer stacks
    assert torch.equal(stacked, logits)


def test_mask_classification_logits_of_a_float16_head_are_float32():
    """Under AMP the head's scores and masks are float16: the class distribution is still float32's."""
    scores = torch.zeros(1, 3, 4)
    scores[0, 0, 0] = scores[0, 1, 1] = scores[0, 2, 2] = 12.0  # query q predicts class q
    masks = torch.full((1, 3, 1, 2), -18.0)  # pixel 0: every mask far off (float16's sigmoid is 0)
    masks[0, 0, 0, 0] = -16.0
    masks[0, :, 0, 1] = torch.tensor([4.0, -3.0, -12.0])  # pixel 1: confident, class 2 rare
    expected = head_output_logits(([scores], [masks]), 3, 'Mask2FormerHead')
    half = head_output_logits(([scores.half()], [masks.half()]), 3, 'Mask2FormerHead')
    assert half.dtype == torch.float32
    assert torch.allclose(half.softmax(1), expected.softmax(1), atol=1e-3)
    assert torch.allclose(half[0, :, 0, 1], expected[0, :, 0, 1], atol=1e-2)  # log of a rare class: no 6e-5 floor


@pytest.mark.parametrize('output', [torch.randn(2, 4, 4, 4), torch.randn(2, 5, 16), {'seg': torch.randn(2, 5, 4, 4)},
                                    ({'scores': 1}, [torch.randn(2, 3, 4, 4)]), ([], [])])
def test_head_output_logits_refuses_what_is_not_a_class_map(output):
    with pytest.raises(TypeError, match='decode head PointHead has no conv_seg'):
        head_output_logits(output, 5, 'PointHead')


def test_head_without_conv_seg_is_read_when_its_loss_calls_forward_directly():
    class StagedHead(torch.nn.Module):  # K-Net's shape: stage outputs, forward called by loss
        num_classes = 5

        def forward(self, x):
            return [x, x * 2]

        def loss(self, x):
            return self.forward(x)

    segmentor = torch.nn.Module()
    segmentor.decode_head = StagedHead()
    reader = SegPairLogits(segmentor)
    segmentor.train()
    x = torch.randn(2, 5, 4, 4)
    stages = segmentor.decode_head.loss(x)
    labels = torch.randint(0, 5, (2, 1, 8, 8))
    samples = [type('Sample', (), {'gt_sem_seg': type('Map', (), {'data': label})})() for label in labels]
    logits, weights = reader(samples)
    assert torch.equal(logits, stages[-1].flatten(2)) and weights.shape == (2, 16, 5)
    reader.remove()
    assert 'forward' not in segmentor.decode_head.__dict__
    segmentor.decode_head.loss(x)
    assert reader._logits.value is None  # nothing is read once removed


@pytest.mark.parametrize('ignore_index', [0, 255])
def test_the_heads_ignore_index_counts_for_no_class(ignore_index):
    """A head that ignores a class id (0: 'unlabelled') has those pixels out of the pair KL,
    as out of its cross-entropy."""
    class Head(torch.nn.Module):
        num_classes = 4

        def __init__(self):
            super().__init__()
            self.ignore_index = ignore_index
            self.conv_seg = torch.nn.Conv2d(3, 4, 1)

    segmentor = torch.nn.Module()
    segmentor.decode_head = Head()
    reader = SegPairLogits(segmentor)
    segmentor.train()
    segmentor.decode_head.conv_seg(torch.randn(2, 3, 4, 4))
    labels = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    labels[:, :, 2:6, 2:6] = 2
    samples = [type('Sample', (), {'gt_sem_seg': type('Map', (), {'data': label})})() for label in labels]
    _, weights = reader(samples)
    assert weights[..., 2].sum() == 2 * 16
    assert weights[..., 0].sum() == (0 if ignore_index == 0 else 2 * 48)


def test_a_cascade_distils_its_last_head_with_a_classifier():
    """OCRNet: an FCN head, then the OCR head; both have conv_seg, the last is distilled."""
    from ipswap_mm.models.seg.seg_pair_logits import distilled_head

    def head():
        module = torch.nn.Module()
        module.conv_seg = torch.nn.Conv2d(4, 3, 1)
        return module
    segmentor = torch.nn.Module()
    segmentor.decode_head = torch.nn.ModuleList([head(), head()])
    assert distilled_head(segmentor) is segmentor.decode_head[1]


def test_a_forward_outside_training_is_not_read():
    class StagedHead(torch.nn.Module):
        num_classes = 5

        def forward(self, x):
            return [x, x * 2]

    segmentor = torch.nn.Module()
    segmentor.decode_head = StagedHead()
    reader = SegPairLogits(segmentor)
    segmentor.eval()
    segmentor.decode_head(torch.randn(2, 5, 4, 4))
    with pytest.raises(RuntimeError, match='no logits'):
        reader([])
    reader.remove()


class ConvSegHead(torch.nn.Module):
    def __init__(self, num_classes=4, out_channels=None):
        super().__init__()
        self.num_classes = num_classes
        if out_channels is not None:
            self.out_channels = out_channels
        self.conv_seg = torch.nn.Conv2d(3, out_channels or num_classes, 1)


def test_an_eval_forward_of_conv_seg_is_not_read():
    segmentor = torch.nn.Module()
    segmentor.decode_head = ConvSegHead()
    reader = SegPairLogits(segmentor)
    segmentor.eval()
    segmentor.decode_head.conv_seg(torch.randn(2, 3, 4, 4))
    with pytest.raises(RuntimeError, match='no logits'):
        reader([])
    reader.remove()


def test_a_binary_sigmoid_head_is_refused_when_the_reader_is_built():
    segmentor = torch.nn.Module()
    segmentor.decode_head = ConvSegHead(num_classes=2, out_channels=1)
    with pytest.raises(TypeError, match='binary sigmoid'):
        SegPairLogits(segmentor)
