"""Pairing at the scale of large datasets: an epoch's pairs (time), what the class index
holds (memory), which images sit an epoch out (long tails). Run from the repository root,
with the pairing module of an earlier commit to compare against:

    git show fef949c:ipswap_mm/core/pairing.py > /tmp/pairing_old.py
    python docs/runs/pairing_scale.py [/tmp/pairing_old.py]

Synthetic class sets: class frequencies follow a power law (1/rank) matched to each
dataset's size; numbers are those of one 2-core machine (timings +-20%).
"""
import importlib.util
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, '.')
from ipswap_mm.core import pairing  # noqa: E402

modules = [('now', pairing)]
if len(sys.argv) > 1:
    spec = importlib.util.spec_from_file_location('pairing_old', sys.argv[1])
    old = importlib.util.module_from_spec(spec)
    sys.modules['pairing_old'] = old
    spec.loader.exec_module(old)
    modules.insert(0, ('old', old))


def power_law(rng, num_images, num_classes, most=5):
    p = 1.0 / np.arange(1, num_classes + 1)
    return [np.unique(rng.choice(num_classes, size=rng.integers(1, most + 1), p=p / p.sum()))
            for _ in range(num_images)]


def timed(label, sets, image_ids=None):
    for name, module in modules:
        start = time.perf_counter()
        _, stats = module.build_intra_class_pairs(sets, np.random.default_rng(1), 'random', image_ids)
        print(f'{label}, {name}: {time.perf_counter() - start:.2f} s an epoch; {stats}')


# 1. a RepeatDataset of 20 images, one of them the only image of its class (its copies have no partner)
for times in (2000, 8000):
    base = [np.array([0])] * 19 + [np.array([1])]
    image_ids = np.tile(np.arange(20), times)
    timed(f'20 images x {times}, one alone in its class', [base[i] for i in image_ids], image_ids)

# 1b. copies of one image A, the only image of its key, among images that share A's class
#     (each alone in its own key): A's copies are leftovers that pair with the others
for copies in (8000, 16000):
    sets = [np.array([0])] * copies + [np.array([j + 1, 0]) for j in range(copies // 2)]
    image_ids = np.r_[np.zeros(copies, np.int64), np.arange(1, copies // 2 + 1)]
    for name, module in modules:
        if name == 'old' and copies > 8000:
            continue
        start = time.perf_counter()
        _, stats = module.build_intra_class_pairs(sets, np.random.default_rng(0), 'dominant', image_ids)
        print(f'{copies} copies of one image among {copies // 2} sharing its class, {name}: '
              f'{time.perf_counter() - start:.2f} s an epoch; {stats}')

# 2. a V3Det-like long tail: 183k images, 13k classes, 1-3 classes an image
timed('183k images, 13k classes', power_law(np.random.default_rng(0), 183_348, 13_204, most=3))

# 3. Objects365-like: what every process holds, and an epoch's pairs
rng = np.random.default_rng(0)
lengths = rng.integers(1, 6, size=1_742_292)
p = 1.0 / np.arange(1, 366)
flat = rng.choice(365, size=lengths.sum(), p=p / p.sum())
offsets = np.r_[0, np.cumsum(lengths)]
tracemalloc.start()
arrays = [flat[offsets[i]:offsets[i + 1]].copy() for i in range(len(lengths))]
list_mb = tracemalloc.get_traced_memory()[0] / 2**20
tracemalloc.stop()
tracemalloc.start()
sets = pairing.ClassSets(flat.copy(), offsets.copy())
sets_mb = tracemalloc.get_traced_memory()[0] / 2**20
tracemalloc.stop()
print(f'1.74M images, 365 classes: a list of arrays holds {list_mb:.0f} MB, ClassSets {sets_mb:.0f} MB')
for name, module in modules:
    start = time.perf_counter()
    module.build_intra_class_pairs(arrays if name == 'old' else sets, np.random.default_rng(1), 'random')
    print(f'1.74M images, {name}: {time.perf_counter() - start:.2f} s an epoch')

# 4. an LVIS-like tail: 100k images; 337 rare classes of 1-10 images, each such image holding
#    only its rare class; the rest 1-5 of 866 common classes. Epochs each image misses, of 30.
rng = np.random.default_rng(0)
sets = []
for cls in range(866, 1203):
    sets += [np.array([cls])] * int(rng.integers(1, 11))
sets += power_law(rng, 100_000 - len(sets), 866)
rare = np.array([s[0] >= 866 for s in sets])
for name, module in modules:
    missed = np.zeros(len(sets))
    for epoch in range(30):
        pairs, stats = module.build_intra_class_pairs(sets, np.random.default_rng([7, epoch]), 'random')
        seen = np.zeros(len(sets), bool)
        seen[pairs.ravel()] = True
        missed += ~seen
    print(f'long tail, {name}: {rare.sum()} rare-class images miss {missed[rare].mean():.3f} of 30 epochs '
          f'(worst {missed[rare].max():.0f}), the others {missed[~rare].mean():.4f} (worst {missed[~rare].max():.0f}); '
          f'{stats.dropped} dropped an epoch')
