"""Class edges of a label map, as MMSegmentation's ``GenerateEdge`` draws them (PIDNet).

Pure PyTorch, batched, on the labels' device. A swap moves labels across cell seams, so an
edge map made from the unswapped labels no longer matches them; it is drawn again from the
swapped ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def label_edges(labels: Tensor, edge_width: int, ignore_index: int = 255) -> Tensor:
    """``(N, H, W)`` integer labels -> ``(N, H, W)`` uint8 edges, 1 near a change of class.

    The rule of ``GenerateEdge(edge_width, ignore_index)``, pixel for pixel: a pixel is
    marked when its class differs from that of the pixel above it, to its right, below-right
    or below-left, neither being ``ignore_index``; the marks are then dilated by an
    ``edge_width`` square anchored at ``edge_width // 2``, as ``cv2.dilate`` does.
    """
    if edge_width < 1:
        raise ValueError(f'edge_width must be >= 1, got {edge_width!r}')
    valid = labels != ignore_index

    def differ(a: Tensor, b: Tensor, valid_a: Tensor, valid_b: Tensor) -> Tensor:
        return (a != b) & valid_a & valid_b

    edges = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    # each pixel (left operand) against the one above it, to its right, below-right and below-left
    edges[:, 1:, :] |= differ(labels[:, 1:, :], labels[:, :-1, :], valid[:, 1:, :], valid[:, :-1, :])
    edges[:, :, :-1] |= differ(labels[:, :, :-1], labels[:, :, 1:], valid[:, :, :-1], valid[:, :, 1:])
    edges[:, :-1, :-1] |= differ(labels[:, :-1, :-1], labels[:, 1:, 1:], valid[:, :-1, :-1], valid[:, 1:, 1:])
    edges[:, :-1, 1:] |= differ(labels[:, :-1, 1:], labels[:, 1:, :-1], valid[:, :-1, 1:], valid[:, 1:, :-1])
    if edge_width == 1:
        return edges.to(torch.uint8)
    before = edge_width // 2  # cv2.dilate's anchor: the output at p is the max over p - before .. p - before + w - 1
    after = edge_width - 1 - before
    padded = F.pad(edges[:, None].float(), (before, after, before, after))
    return F.max_pool2d(padded, edge_width, stride=1)[:, 0].to(torch.uint8)
