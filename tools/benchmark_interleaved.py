"""IPS against the baseline, step by step in one process: a time ratio a noisy machine can resolve.

``benchmark_cost.py`` runs every variant in its own process, so that each has its own peak
memory; on a shared VM two processes can run at speeds 10% apart for reasons of their own
(seen here: the same DeepLabV3 step, 1.18 s in one process and 1.30 s in the next). This
tool builds the baseline and the IPS model of a task in one process and trains them in
alternation on the same generated batch (``benchmark_cost.py``'s tasks), swapping which
goes first every step, so that what the machine does to the process falls on both. It
reports each variant's median step, their ratio, the median of the per-step ratios (IPS
step over the baseline step it ran next to), and the loss keys of each variant's last step
(IPS logs ``loss_ips_kl``). Memory is not measured here.

    python tools/benchmark_interleaved.py [--tasks seg,two_stage,one_stage] [--steps 16] [--warmup 2]
                                          [--crop 128] [--batch 4] [--device cpu] [--out DIR]

Writes ``interleaved.json`` (settings, and every step's time) to ``--out``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

VARIANTS = ('baseline', 'ips')


def interleaved(task: str, device: str, steps: int, warmup: int, crop: int, batch: int) -> dict:
    """Train the baseline and IPS models of ``task`` in alternation; every step's time, both variants."""
    import numpy as np
    import torch
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope

    from ipswap_mm.engine.distill_hook import IPSDistillHook
    from tools.benchmark_cost import TASKS, synchronize
    spec = TASKS[task]
    models = {}
    with DefaultScope.overwrite_default_scope(spec.scope):
        for variant in VARIANTS:
            torch.manual_seed(0)
            np.random.seed(0)
            cfg, model = spec.build(spec.ips if variant == 'ips' else spec.baseline, crop, device)
            if variant == 'ips':
                IPSDistillHook(**{k: v for k, v in cfg.custom_hooks[0].items() if k != 'type'}).attach(model)
            # foreach: the update torch picks for GPU parameters (see benchmark_cost.py)
            optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, foreach=True))
            models[variant] = model.train(), optim
        raw = spec.samples(batch, crop)
        times = {variant: [] for variant in VARIANTS}
        losses = {}
        for step in range(warmup + steps):
            for variant in (VARIANTS if step % 2 == 0 else VARIANTS[::-1]):
                model, optim = models[variant]
                data = spec.collate(spec.prepare(raw, None), None)
                synchronize(device)
                start = time.perf_counter()
                losses[variant] = sorted(model.train_step(data, optim))
                synchronize(device)
                if step >= warmup:
                    times[variant].append(time.perf_counter() - start)
    baseline, ips = times['baseline'], times['ips']
    return dict(task=task, baseline_s=baseline, ips_s=ips, losses=losses,
                baseline_median_s=statistics.median(baseline), ips_median_s=statistics.median(ips),
                ratio_of_medians=statistics.median(ips) / statistics.median(baseline),
                median_step_ratio=statistics.median(b / a for a, b in zip(baseline, ips)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', default='seg,two_stage,one_stage')
    parser.add_argument('--steps', type=int, default=16, help='timed steps of each variant')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps of each variant first')
    parser.add_argument('--crop', type=int, default=128)
    parser.add_argument('--batch', type=int, default=4, help='images per batch, even (whole pairs)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='work_dirs/benchmark_interleaved')
    args = parser.parse_args(argv)
    from tools.benchmark_cost import TASKS
    tasks = args.tasks.split(',')
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or args.batch % 2 or args.steps < 1:
        parser.error(f'--tasks: unknown {unknown}, choose from {sorted(TASKS)}' if unknown else
                     f'--batch {args.batch} is odd: batches hold whole pairs' if args.batch % 2 else
                     '--steps must be at least 1')
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for task in tasks:
        rows.append(interleaved(task, args.device, args.steps, args.warmup, args.crop, args.batch))
        row = rows[-1]
        print(f"{task}: baseline {row['baseline_median_s']:.4f} s, IPS {row['ips_median_s']:.4f} s a step "
              f"(medians of {args.steps}); IPS / baseline {row['ratio_of_medians']:.3f}, "
              f"median of the per-step ratios {row['median_step_ratio']:.3f}", flush=True)
        with open(osp.join(args.out, 'interleaved.json'), 'w') as file:
            json.dump(dict(command=' '.join(sys.argv), device=args.device, crop=args.crop, batch=args.batch,
                           rows=rows), file, indent=1)


if __name__ == '__main__':
    main()
