"""Per-cell class counts: the index_add_ form before commit 5032726 (an (N, H, W) table
cached) against the current scatter_add_ form (one (H * W,) row cached). Same counts; best of
three runs of ten calls, CPU. Run from the repository root:

    python docs/runs/cell_counts_timing.py
"""
import functools
import sys
import time

import torch

sys.path.insert(0, '.')
from ipswap_mm.core.cell_counts import cell_class_counts  # noqa: E402


@functools.lru_cache(maxsize=4)
def _old_bins(num, height, width, size, num_classes):
    cell_h, cell_w = size
    rows = torch.arange(height) * cell_h // height
    cols = torch.arange(width) * cell_w // width
    cell = rows[:, None] * cell_w + cols[None, :]
    images = torch.arange(num)[:, None, None] * (cell_h * cell_w)
    first_bin = (images + cell) * (num_classes + 2) + 1
    return first_bin, torch.ones((), dtype=torch.float64).expand(first_bin.numel())


def old_counts(labels, size, num_classes):
    num, height, width = labels.shape
    first_bin, ones = _old_bins(num, height, width, tuple(size), num_classes)
    index = first_bin + labels.long().clamp(-1, num_classes)
    counts = torch.zeros(num * size[0] * size[1] * (num_classes + 2), dtype=torch.float64)
    counts.index_add_(0, index.view(-1), ones)
    return counts.view(num, size[0] * size[1], num_classes + 2)[..., 1:-1]


for shape, size, classes in [((4, 128, 128), (16, 16), 21), ((4, 512, 512), (64, 64), 21),
                             ((16, 512, 512), (64, 64), 150)]:
    labels = torch.randint(-3, classes + 3, shape)
    labels[labels > classes] = 255
    assert torch.equal(old_counts(labels, size, classes), cell_class_counts(labels, size, classes))
    best = {}
    for _ in range(3):
        for name, function in (('index_add_ (old)', old_counts), ('scatter_add_ (now)', cell_class_counts)):
            function(labels, size, classes)
            start = time.perf_counter()
            for _ in range(10):
                function(labels, size, classes)
            best[name] = min(best.get(name, 1e9), (time.perf_counter() - start) / 10 * 1e3)
    print(f'{shape} -> cells {size}, {classes} classes: ' + ', '.join(f'{k} {v:.2f} ms' for k, v in best.items()))
