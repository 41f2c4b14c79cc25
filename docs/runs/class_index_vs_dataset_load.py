"""Time of the class index against MMDetection's own load of the same COCO-like dataset (n images of
7 objects with box and polygon; no tracemalloc). Run from the repository root:

    python docs/runs/class_index_vs_dataset_load.py 118287
"""
import json
import sys
import tempfile
import time

import numpy as np
from mmdet.datasets import CocoDataset

sys.path.insert(0, '.')
from ipswap_mm.datasets.class_index import dataset_class_index  # noqa: E402

n = int(sys.argv[1])
rng = np.random.default_rng(0)
d = tempfile.mkdtemp()
images = [dict(id=i, file_name=f'{i:012d}.jpg', height=480, width=640) for i in range(n)]
anns = []
for i in range(n):
    for _ in range(7):
        x, y = float(rng.integers(0, 500)), float(rng.integers(0, 400))
        anns.append(dict(id=len(anns) + 1, image_id=i, category_id=int(rng.integers(1, 81)), bbox=[x, y, 30.0, 40.0],
                         area=1200.0, iscrowd=0, segmentation=[[x, y, x + 30, y, x + 30, y + 40, x, y + 40]]))
cats = [dict(id=c, name=name) for c, name in enumerate(CocoDataset.METAINFO['classes'], start=1)]
json.dump(dict(images=images, annotations=anns, categories=cats), open(f'{d}/a.json', 'w'))
t = time.perf_counter()
ds = CocoDataset(ann_file=f'{d}/a.json', data_root=d, data_prefix=dict(img=''),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=[])
t_load = time.perf_counter() - t
t = time.perf_counter()
dataset_class_index(ds, cache_dir='')
t_index = time.perf_counter() - t
print(f'{n} images: MMDetection CocoDataset load {t_load:.1f} s, class index {t_index:.1f} s')
