"""Time ``make_weights_only_safe`` + ``torch.save`` + ``torch.load(weights_only=True)`` of a
message hub with seven logged keys of N values each (README, "Checkpoints, --resume and
torch >= 2.6"), and check that the histories come back equal.

    python docs/runs/checkpoint_history_load.py 1000000
"""
import io
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from ipswap_mm.engine.checkpoint_safety import make_weights_only_safe, restore_history_buffers  # noqa: E402

KEYS = ('loss', 'loss_cls', 'loss_bbox', 'loss_ips_kl', 'time', 'data_time', 'lr')


def main(num: int) -> None:
    rng = np.random.default_rng(0)
    buffers = {f'train/{key}': HistoryBuffer(rng.random(num).tolist(), np.ones(num, np.int64).tolist(), max_length=num)
               for key in KEYS}
    before = {key: (b._log_history.copy(), b._count_history.copy()) for key, b in buffers.items()}
    checkpoint = make_weights_only_safe(dict(message_hub=dict(log_scalars=buffers, runtime_info=dict(iter=num))))
    file = io.BytesIO()
    start = time.perf_counter()
    torch.save(checkpoint, file)
    save_s = time.perf_counter() - start
    file.seek(0)
    start = time.perf_counter()
    loaded = torch.load(file, weights_only=True)
    load_s = time.perf_counter() - start
    after = restore_history_buffers(loaded)['message_hub']['log_scalars']
    equal = all(np.array_equal(after[key]._log_history, log) and np.array_equal(after[key]._count_history, count)
                and after[key]._log_history.dtype == log.dtype for key, (log, count) in before.items())
    print(f'{len(KEYS)} keys x {num} values: save {save_s:.2f} s, load(weights_only) {load_s:.2f} s, '
          f'{len(file.getvalue()) / 1e6:.1f} MB, histories equal after the round trip: {equal}')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000000)
