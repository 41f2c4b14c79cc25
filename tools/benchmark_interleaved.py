"""IPS (and the alternatives) against the baseline, step by step in one process: time ratios a
noisy machine can resolve.

``benchmark_cost.py`` runs every variant in its own process, so that each has its own peak
memory; on a shared VM two processes can run at speeds 10% apart for reasons of their own
(seen here: the same DeepLabV3 step, 1.18 s in one process and 1.30 s in the next). This
tool builds the baseline and the chosen variants of a task (``benchmark_cost.py``'s tasks
and variants: ``ips``, the mixing augmentation, ``teacher_kd``, ``feature_kd``) in one process and trains
them in alternation on the same generated batch, rotating which goes first every round, so
that what the machine does to the process falls on all of them. It reports each variant's
median step, its ratio to the baseline's, the median of the per-round ratios (its step over
the baseline step of the same round), and the loss keys of each variant's last step (IPS
logs ``loss_ips_kl``). Memory is not measured here.

    python tools/benchmark_interleaved.py [--tasks seg,two_stage,one_stage] [--variants ips|all|...]
                                          [--steps 16] [--warmup 2] [--crop 128] [--batch 4]
                                          [--device cpu] [--out DIR]

Writes ``interleaved.json`` (settings, and every step's time) to ``--out``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.arguments import nonnegative_int, positive_int  # noqa: E402


def interleaved(task: str, device: str, steps: int, warmup: int, crop: int, batch: int,
                variants: Sequence[str] = ('ips',)) -> dict:
    """Train the baseline and ``variants`` of ``task`` in alternation; every step's time.

    Each round runs one step of every variant, the order rotating from round to round. The
    ratio of every variant to the baseline: of the medians, and the median of the per-round
    ratios (its step over the baseline's step of the same round). Raises unless ``ips``, and
    only ``ips``, logged the pair loss."""
    from mmengine.registry import DefaultScope

    from tools.benchmark_cost import TASKS, VariantStep, synchronize
    names = ['baseline', *[variant for variant in variants if variant != 'baseline']]
    runs = {name: VariantStep(task, name, device, crop, batch) for name in names}
    times = {name: [] for name in names}
    losses = {}
    with DefaultScope.overwrite_default_scope(TASKS[task].scope):
        for step in range(warmup + steps):
            shift = step % len(names)
            for name in names[shift:] + names[:shift]:
                prepared = runs[name].prepared()
                synchronize(device)
                start = time.perf_counter()
                losses[name] = sorted(runs[name].train_step(prepared))
                synchronize(device)
                if step >= warmup:
                    times[name].append(time.perf_counter() - start)
    for run in runs.values():
        run.close()
    with_pair_loss = sorted(name for name, keys in losses.items() if 'loss_ips_kl' in keys)
    if with_pair_loss != (['ips'] if 'ips' in names else []):
        raise RuntimeError(f'{task}: loss_ips_kl was logged by {with_pair_loss}; only the ips variant may log it')
    baseline = times['baseline']
    medians = {name: statistics.median(values) for name, values in times.items()}
    return dict(task=task, times_s=times, losses=losses, median_s=medians,
                ratio_of_medians={name: medians[name] / medians['baseline'] for name in names},
                median_step_ratio={name: statistics.median(b / a for a, b in zip(baseline, times[name]))
                                   for name in names})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', default='seg,two_stage,one_stage')
    parser.add_argument('--variants', default='ips',
                        help="comma-separated, timed against the baseline: ips, the task's mixing variant "
                             '(cutmix, copypaste, mixup), teacher_kd, feature_kd; or all')
    parser.add_argument('--steps', type=positive_int, default=16, help='timed steps of each variant')
    parser.add_argument('--warmup', type=nonnegative_int, default=2, help='untimed steps of each variant first')
    parser.add_argument('--crop', type=positive_int, default=128)
    parser.add_argument('--batch', type=positive_int, default=4, help='images per batch, even (whole pairs)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='work_dirs/benchmark_interleaved')
    args = parser.parse_args(argv)
    from tools.benchmark_cost import parse_tasks, variants
    tasks = parse_tasks(parser, args.tasks, args.batch)
    if args.steps < 1:
        parser.error('--steps must be at least 1')
    chosen = {task: variants(task)[1:] if args.variants == 'all' else args.variants.split(',') for task in tasks}
    wrong = {task: [v for v in names if v not in variants(task)] for task, names in chosen.items()}
    if any(wrong.values()):
        parser.error(f'--variants: {wrong} are not variants of those tasks '
                     f'({ {task: variants(task) for task in tasks} })')
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for task in tasks:
        rows.append(interleaved(task, args.device, args.steps, args.warmup, args.crop, args.batch, chosen[task]))
        row = rows[-1]
        for name in chosen[task]:
            print(f"{task}/{name}: {row['median_s'][name]:.4f} s a step against the baseline's "
                  f"{row['median_s']['baseline']:.4f} s (medians of {args.steps}): "
                  f"{row['ratio_of_medians'][name]:.3f}x, median of the per-step ratios "
                  f"{row['median_step_ratio'][name]:.3f}x", flush=True)
        with open(osp.join(args.out, 'interleaved.json'), 'w') as file:
            json.dump(dict(command=' '.join(sys.argv), device=args.device, crop=args.crop, batch=args.batch,
                           rows=rows), file, indent=1)


if __name__ == '__main__':
    main()
