"""What building the class index of a COCO-like detection dataset holds at its peak (Python
allocations, tracemalloc) and how long it takes: 20,000 images of 7 objects, each with a
box and a 24-coordinate polygon. Run from the repository root of the commit to measure:

    python docs/runs/class_index_infos_memory.py
"""
import sys
import time
import tracemalloc

sys.path.insert(0, '.')
from ipswap_mm.datasets.class_index import dataset_class_index  # noqa: E402


class CocoLike:
    metainfo = dict(classes=tuple(f'c{i}' for i in range(80)))

    def __len__(self):
        return 20000

    def get_data_info(self, i):  # a fresh dict every call, as MMEngine's unpickling gives
        return dict(img_path=f'data/coco/train2017/{i:012d}.jpg', img_id=i, height=480, width=640,
                    instances=[dict(bbox=[1.0, 2.0, 30.0, 40.0], bbox_label=(i * 7 + k) % 80, ignore_flag=0,
                                    mask=[[float(v) for v in range(24)]]) for k in range(7)])


tracemalloc.start()
start = time.perf_counter()
dataset_class_index(CocoLike(), cache_dir='')
print(f'{time.perf_counter() - start:.1f} s, peak {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MB '
      'for 20k COCO-like infos')
