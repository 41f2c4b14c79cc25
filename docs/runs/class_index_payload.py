"""What every rank unpickles of the class index rank 0 broadcasts, for 1.74 million
Objects365-like images: the classes as lists of numbers (as sent until 2026-11-25) and as
one ClassSets. Run from the repository root."""
import pickle
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, '.')
from ipswap_mm.datasets.class_index import _gathered  # noqa: E402

rng = np.random.default_rng(0)
num_images = 1_742_292
lengths = rng.integers(1, 6, size=num_images)
p = 1.0 / np.arange(1, 366)
flat = rng.choice(365, size=lengths.sum(), p=p / p.sum())
offsets = np.r_[0, np.cumsum(lengths)]
entries = [(flat[offsets[i]:offsets[i + 1]].tolist(), [1] * int(lengths[i])) for i in range(num_images)]
index = images = np.arange(num_images)
for name, classes in (('lists', entries), ('ClassSets', _gathered(entries))):
    blob = pickle.dumps([('instances', classes, index, images, ())], protocol=pickle.HIGHEST_PROTOCOL)
    start = time.perf_counter()
    pickle.loads(blob)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    pickle.loads(blob)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f'{name}: {len(blob) / 2**20:.0f} MB pickled, unpickled in {seconds:.2f} s, peak {peak / 2**20:.0f} MB')
