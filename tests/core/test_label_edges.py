import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmseg.datasets.transforms import GenerateEdge

from ipswap_mm.core.label_edges import label_edges


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 20), width=st.integers(1, 20), edge_width=st.integers(1, 6),
       classes=st.integers(1, 4), ignore_share=st.sampled_from([0.0, 0.2]), seed=st.integers(0, 2**31))
def test_edges_are_those_of_mmsegmentation(height, width, edge_width, classes, ignore_share, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (height, width)).astype(np.uint8)
    labels[rng.random((height, width)) < ignore_share] = 255
    expected = GenerateEdge(edge_width=edge_width)(dict(img_shape=(height, width), gt_seg_map=labels))['gt_edge_map']
    edges = label_edges(torch.from_numpy(labels)[None].long(), edge_width)
    assert edges.dtype == torch.uint8 and np.array_equal(edges[0].numpy(), expected)


def test_a_zero_width_is_refused():
    with pytest.raises(ValueError, match='edge_width'):
        label_edges(torch.zeros(1, 4, 4, dtype=torch.long), 0)
