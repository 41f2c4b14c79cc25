"""Mask R-CNN tensor memory per step: baseline, IPS, and IPS with ``min_visible_ratio=0.51``.

The benchmark batch of ``tools/benchmark_cost.py`` (4 generated images, pairs sharing a
class), one warm-up step, then each step profiled for its tensor peak with the tool's own
``cpu_step_tensor_peak_mb``. The swaps are the same for both IPS rows (drawn per call
from the same seed), so the rows pair step by step.

    python docs/maskrcnn_memory_lever.py [STEPS] [SIDE]

Output on 2026-11-23 (commit 751924a, 2-core CPU, torch 2.13.0+cpu), 6 steps at 128:

    baseline: [1071, 1067, 1086, 1086, 1093, 1078] MB, max 1093
    ips: [1173, 1068, 1255, 1094, 1214, 1086] MB, max 1255 (1.148x)
    ips min_visible_ratio=0.51: [1060, 1068, 1038, 1090, 881, 1083] MB, max 1090 (0.997x)
"""
import os.path as osp
import sys

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))
import benchmark_cost  # noqa: E402

import ipswap_mm  # noqa: E402,F401
from ipswap_mm.engine.distill_hook import IPSDistillHook  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 6
side = int(sys.argv[2]) if len(sys.argv) > 2 else 128
spec = benchmark_cost.TASKS['two_stage']
base_max = None
with DefaultScope.overwrite_default_scope(spec.scope):
    for name, config, ratio in (('baseline', spec.baseline, None), ('ips', spec.ips, None),
                                ('ips min_visible_ratio=0.51', spec.ips, 0.51)):
        torch.manual_seed(0)
        cfg, model = spec.build(config, side, 'cpu')
        if config == spec.ips:
            IPSDistillHook(**{k: v for k, v in cfg.custom_hooks[0].items() if k != 'type'}).attach(model)
            if ratio is not None:
                model.data_preprocessor.batch_augments[0].min_visible_ratio = ratio
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
        model.train()
        raw = spec.samples(4, side)
        model.train_step(spec.collate(spec.prepare(raw, None), None), optim)  # momentum buffers
        peaks = []
        for _ in range(steps):
            data = spec.collate(spec.prepare(raw, None), None)
            peaks.append(round(benchmark_cost.cpu_step_tensor_peak_mb(lambda: model.train_step(data, optim),  # noqa: B023
                                                                      [model], optim.optimizer)))
        base_max = base_max or max(peaks)
        ratio_text = '' if name == 'baseline' else f' ({max(peaks) / base_max:.3f}x)'
        print(f'{name}: {peaks} MB, max {max(peaks)}{ratio_text}', flush=True)
