"""Does IPS help? Baseline vs. IPS on scenes of real handwritten digits (``make bench-accuracy``).

Data: scikit-learn's 1,797 handwritten digit images (``load_digits``, 8x8) composed into
64x64 scenes of 2-4 digits on textured backgrounds (``ipswap_mm/synthetic/digits.py``),
written in the VOC layout (segmentation, 11 classes: background + digits) and the COCO
layout (detection, 10 classes); training and validation scenes use disjoint digit images.

For each task, variant and seed, one training run on the CPU, in this process:

  seg  configs/baseline_deeplabv3_voc.py vs configs/ipswap_deeplabv3_voc.py   -> val mIoU (%)
  det  configs/baseline_retinanet_r50_fpn_1x_coco.py vs configs/ipswap_retinanet_r50_fpn_1x_coco.py
                                                                              -> val COCO bbox mAP (%)

Both variants of a task get exactly the same changes: ``OVERRIDES`` (a ResNet-18, small
heads; ``--cfg-options`` keys merged with ``Config.merge_from_dict``), the digit classes,
AdamW and an iteration-based schedule, no horizontal flip (digits are not mirror-symmetric),
scale jitter 0.75-1.5. Only the configs' IPS block differs, used as it is (``IPS_OVERRIDES``
is empty). The same number of iterations, batch size and seeds (``randomness.seed``).
Validation every ``--val-interval`` iterations gives the curves.

Two starts (``--start``):

  scratch  every run starts from random weights (seg 800, det 600 iterations by default);
  warm     every run starts from the same checkpoint: the baseline, trained first from scratch
           (seg: seed 0, 800 iterations; det: seed 2, 2000 iterations; ``--init-seed``,
           ``--init-iters``), with a fresh optimizer and schedule (seg 2000, det 1000
           iterations by default). The setting closest to fine-tuning a model whose backbone
           has already learned features, the way detectors and segmentors are trained.
           ``make bench-accuracy`` runs this one. The start checkpoint is written under
           ``<out>/init/<task>/`` and reused while its config is unchanged.

The detection start seed is 2 because the baseline RetinaNet fails to start at this scale
on seeds 0 and 1 (box regression stuck, mAP 5.30 and 0.00 at 2000 iterations on our
machine; seed 2: 19.00); the report flags a start checkpoint below ``TASKS[task]['init_min']``.

Writes ``<out>/accuracy.json`` (every run: final metrics, loss per iteration, metric per
validation), ``<out>/accuracy.md`` (mean ± std over seeds, per-seed values, the command)
and ``<out>/curves.png`` (task loss and val metric vs. iteration, mean over seeds).

Sweeps: ``--sweep KEY=V1,V2`` trains the IPS variant once per value (every seed), the
value merged as ``--cfg-options KEY=V`` would; values are parsed as ``--cfg-options``
parses them (a tuple: ``"(0.3,0.7)"``). Keys of the IPS block:

  model.data_preprocessor.batch_augments.0.patch_size    (must divide the 64-pixel crop: 8, 16, 32)
  model.data_preprocessor.batch_augments.0.swap_prob
  model.data_preprocessor.batch_augments.0.swap_ratio
  model.data_preprocessor.batch_augments.0.min_visible_ratio   (det: objects cut by a swap)
  model.data_preprocessor.batch_augments.0.min_visible_area    (det)
  custom_hooks.0.loss.temperature
  custom_hooks.0.loss.loss_weight
  custom_hooks.0.loss.teacher                             (confidence, symmetric, confident_correct)
  custom_hooks.0.loss.weighting                           (classes, elements)
  custom_hooks.0.warmup_iters                             (KL warm-up, iterations)

    python tools/benchmark_accuracy.py --start warm    # make bench-accuracy: seg + det, baseline + ips, seeds 0,1,2
    python tools/benchmark_accuracy.py                 # the same from scratch
    python tools/benchmark_accuracy.py --tasks seg --sweep model.data_preprocessor.batch_augments.0.patch_size=8,32
    python tools/benchmark_accuracy.py --tasks det --variants ips --cfg-options custom_hooks.0.loss.temperature=2.0
"""
import argparse
import contextlib
import copy
import gc
import hashlib
import json
import math
import os
import os.path as osp
import platform
import shlex
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from ipswap_mm.engine.cfg_options import MISSING, accepted_option, ips_block_options, lookup  # noqa: E402
from tools.arguments import positive_int  # noqa: E402

TASKS = {
    'seg': dict(baseline='configs/baseline_deeplabv3_voc.py', ips='configs/ipswap_deeplabv3_voc.py',
                metric='mIoU', label='mIoU (%)', scale=1.0, iters=800, warm_iters=2000,
                init_seed=0, init_iters=800, init_min=20.0,
                model='the DeepLabV3 config with a half-width ResNet-18 (V1c, dilated, output stride 8) and a '
                      '1x1 FCN head (no ASPP, no auxiliary head)'),
    'det': dict(baseline='configs/baseline_retinanet_r50_fpn_1x_coco.py',
                ips='configs/ipswap_retinanet_r50_fpn_1x_coco.py',
                metric='coco/bbox_mAP', label='bbox mAP (%)', scale=100.0, iters=600, warm_iters=1000,
                init_seed=2, init_iters=2000, init_min=10.0,
                model='RetinaNet, ResNet-18, FPN 64 channels, head 64 channels x 2 convs, anchors 16-25 px at P3'),
}
VARIANTS = ('baseline', 'ips')
STARTS = ('scratch', 'warm')
DEFAULT_SEEDS = '0,1,2'

# The same for both variants of a task: --cfg-options keys, merged with Config.merge_from_dict.
OVERRIDES = {
    'seg': {
        'model.backbone.depth': 18,
        'model.backbone.stem_channels': 32,
        'model.backbone.base_channels': 32,  # half-width ResNet-18: stages of 32, 64, 128, 256 channels
        'model.backbone.norm_cfg.type': 'BN',
        # A 1x1 classifier on the last stage (FCN with no head convs): in our probes the ASPP
        # head, and an FCN head with convs, predicted background only for 300+ iterations
        # from scratch at this scale, while this head learned the digits.
        'model.decode_head': dict(_delete_=True, type='FCNHead', in_channels=256, in_index=3, channels=256,
                                  num_convs=0, concat_input=False, dropout_ratio=0.0, num_classes=11,
                                  norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
                                  loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        'model.auxiliary_head': None,
    },
    'det': {
        'model.backbone.depth': 18,
        'model.backbone.frozen_stages': -1,  # from scratch: nothing frozen, BN statistics trained
        'model.backbone.norm_eval': False,
        'model.neck.in_channels': [64, 128, 256, 512],
        'model.neck.out_channels': 64,
        'model.bbox_head.in_channels': 64,
        'model.bbox_head.feat_channels': 64,
        'model.bbox_head.stacked_convs': 2,
        'model.bbox_head.num_classes': 10,
        'model.bbox_head.anchor_generator.octave_base_scale': 2,  # 16-25 px anchors at stride 8: the digits' size
    },
}
# Both tasks, both variants: AdamW (from scratch, a few hundred iterations; SGD at the stock
# learning rate had not left the all-background prediction after 400 iterations).
OPTIM_WRAPPER = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=3e-3, weight_decay=0.01),
                     clip_grad=dict(max_norm=35, norm_type=2))
# IPS settings the benchmark changes: none, the configs' IPS block is used as it is (patch 32,
# a 2x2 grid on the 64-pixel crops; swap_prob 0.5, swap_ratio 0.5, T=1, weight 0.1). Patch 16
# (4x4 grid, a digit cut into pieces) lowers both tasks: docs/runs/benchmark_accuracy_*swap_sweep*.md.
IPS_OVERRIDES = {'seg': {}, 'det': {}}


class SweepError(ValueError):
    """A malformed ``--sweep`` or a key the IPS config does not have."""


def split_values(text: str) -> list:
    """Split ``text`` at the commas outside brackets: ``'8,(0.3,0.7)'`` -> ``['8', '(0.3,0.7)']``."""
    pieces, depth, current = [], 0, ''
    for char in text:
        if char in '([':
            depth += 1
        elif char in ')]':
            depth -= 1
        if char == ',' and depth == 0:
            pieces.append(current)
            current = ''
        else:
            current += char
    return pieces + [current]


def parse_sweep(items) -> list:
    """``['KEY=V1,V2', ...]`` -> ``[(KEY, [v1, v2]), ...]``, values parsed as ``--cfg-options`` does."""
    from mmengine.config import DictAction
    sweeps = []
    for item in items or []:
        key, sep, text = item.partition('=')
        key = key.strip()
        if not sep or not key or not text.strip():
            raise SweepError(f'--sweep {item!r}: expected KEY=V1,V2,... (for example '
                             'model.data_preprocessor.batch_augments.0.patch_size=8,16)')
        if not all(part for part in key.split('.')):
            raise SweepError(f'--sweep {item!r}: {key!r} is not a dotted config key')
        pieces = [piece.strip() for piece in split_values(text)]
        if any(not piece for piece in pieces):
            raise SweepError(f'--sweep {item!r}: empty value in {text!r}')
        sweeps.append((key, [DictAction._parse_iterable(piece) for piece in pieces]))
    return sweeps


def _adapt_pipeline(pipeline) -> None:
    """No horizontal flip (digits are not mirror-symmetric); scale jitter 0.75-1.5 instead of
    0.5-2 (a digit at half size is 8-12 pixels, below its 8x8 source's legibility)."""
    for step in pipeline:
        if step['type'] == 'RandomFlip':
            step['prob'] = 0.0
        if step['type'] == 'RandomResize' and 'ratio_range' in step:
            step['ratio_range'] = (0.75, 1.5)


def _common_schedule(cfg, iters: int, val_interval: int, batch: int, work_dir: str, verbose: bool) -> None:
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_begin=1, val_interval=val_interval)
    cfg.train_dataloader.batch_size = batch
    cfg.val_dataloader.batch_size = cfg.test_dataloader.batch_size = 16  # all scenes have one size
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=max(1, iters // 10), log_metric_by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.log_level = 'INFO' if verbose else 'WARNING'
    cfg.work_dir = work_dir


def build_config(task: str, variant: str, data_root: str, seed: int, iters: int, val_interval: int, batch: int,
                 size: int, work_dir: str, cfg_options: dict = None, verbose: bool = False):
    """The run's config: the project's ``variant`` config, shrunk to a CPU run on the digit
    data, ``OVERRIDES[task]`` (and ``IPS_OVERRIDES`` for IPS), then ``cfg_options``."""
    from mmengine.config import Config

    from ipswap_mm.engine.config_walk import leaf_datasets
    from ipswap_mm.synthetic.digits import det_metainfo, seg_metainfo
    from ipswap_mm.synthetic.small_run import shrink_det_config, shrink_seg_config
    spec = TASKS[task]
    cfg = Config.fromfile(osp.join(ROOT, spec[variant]))
    # The Runner prints / dumps the config four times; formatting it with yapf costs seconds each
    # time. Config.fromfile(format_python_code=False) drops the flag in MMEngine 0.10.7: set it here.
    object.__setattr__(cfg, '_format_python_code', False)
    if task == 'seg':
        shrink_seg_config(cfg, data_root, size, iters, work_dir, batch_size=batch)
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            for dataset in leaf_datasets(cfg[loader].dataset):
                dataset.update(type='BaseSegDataset', metainfo=seg_metainfo(), img_suffix='.jpg',
                               seg_map_suffix='.png')
                _adapt_pipeline(dataset.pipeline)
        cfg.param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=iters, by_epoch=False)]
    else:
        shrink_det_config(cfg, data_root, (size, size), 1, work_dir, batch_size=batch)
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            for dataset in leaf_datasets(cfg[loader].dataset):
                dataset.metainfo = det_metainfo()
                _adapt_pipeline(dataset.pipeline)
                for step in dataset.pipeline:
                    if step['type'] == 'LoadAnnotations' and loader == 'train_dataloader':
                        step['with_mask'] = True  # the swap recomputes boxes from the digits' masks
        warmup = min(50, max(1, iters // 10))
        cfg.param_scheduler = [
            dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup),
            dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=warmup, end=iters, by_epoch=False),
        ]
    _common_schedule(cfg, iters, val_interval, batch, work_dir, verbose)
    cfg.optim_wrapper = copy.deepcopy(OPTIM_WRAPPER)
    cfg.merge_from_dict(copy.deepcopy(OVERRIDES[task]))
    if variant == 'ips':
        cfg.merge_from_dict(copy.deepcopy(IPS_OVERRIDES[task]))
    cfg.randomness = dict(seed=seed, deterministic=False)
    if cfg_options:
        cfg.merge_from_dict(copy.deepcopy(cfg_options))
    return cfg


def _scalar(value) -> float:
    return float(value.detach()) if hasattr(value, 'detach') else float(value)


def make_recorder():
    from mmengine.hooks import Hook

    class CurveRecorder(Hook):
        """Loss terms of every training iteration and the metrics of every validation."""

        priority = 'LOWEST'

        def __init__(self) -> None:
            self.losses, self.validations = [], []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            values = {key: _scalar(value) for key, value in (outputs or {}).items() if key.startswith('loss')}
            self.losses.append(dict(iter=runner.iter + 1, **values))

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.validations.append(dict(iter=runner.iter, **{k: float(v) for k, v in (metrics or {}).items()}))

    return CurveRecorder()


@contextlib.contextmanager
def _quiet(verbose: bool, path: str):
    """Send what is printed (pycocotools' summaries) to ``path`` unless ``verbose``."""
    if verbose:
        yield
        return
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as file, contextlib.redirect_stdout(file):
        yield


def train_one(task: str, variant: str, seed: int, args, data_root: str, cfg_options: dict, name: str,
              cfg=None) -> dict:
    """Train and validate one run in this process; its curves and final metric. ``cfg``: a
    config from :func:`build_config` to train instead of the run's own (the warm start's)."""
    from mmengine.runner import Runner

    from ipswap_mm.engine import trusted_checkpoint_globals
    spec = TASKS[task]
    if cfg is None:
        cfg = build_config(task, variant, data_root, seed, args.iters_of[task], args.val_interval_of[task],
                           args.batch, args.size, osp.join(args.out, 'runs', task, name, f'seed{seed}'),
                           cfg_options, args.verbose)
    work_dir, iters = cfg.work_dir, cfg.train_cfg.max_iters
    cfg.experiment_name = f'{task}_{name}_seed{seed}'.replace('=', '-').replace('/', '_')
    # The visualizer is a process-wide instance looked up by name: a name of its own per run,
    # or every later run of this process writes its scalars into the first run's vis_data.
    cfg.visualizer.name = cfg.experiment_name
    start = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    recorder = make_recorder()
    runner.register_hook(recorder)
    with trusted_checkpoint_globals(), _quiet(args.verbose, osp.join(work_dir, 'stdout.log')):
        runner.train()
    seconds = time.perf_counter() - start
    validations = recorder.validations
    curve = [dict(iter=v['iter'], value=v.get(spec['metric'], 0.0) * spec['scale']) for v in validations]
    final = validations[-1] if validations else {}
    value = final.get(spec['metric'])
    note = None
    if value is None:  # mmdet's CocoMetric returns nothing when the model detects nothing: mAP 0
        value, note = 0.0, f'no {spec["metric"]} reported (no detections): counted as 0'
    del runner
    gc.collect()
    return dict(task=task, variant=name, seed=seed, iters=iters, value=value * spec['scale'],
                final_metrics=final, val_curve=curve, losses=recorder.losses, seconds=seconds, note=note,
                cfg_options=cfg_options or {}, work_dir=work_dir)


def warm_start_checkpoint(task: str, args, data_root: str) -> dict:
    """``--start warm``: the checkpoint every run of ``task`` starts from. The baseline config
    with the shared ``--cfg-options``, seed ``--init-seed``, ``--init-iters`` iterations from
    scratch, saved at its last iteration under ``<out>/init/<task>/``; trained once and
    reused while its config (hashed) is unchanged. Returns its record: checkpoint, metric."""
    iters, seed = args.init_iters_of[task], args.init_seed_of[task]
    work_dir = osp.join(args.out, 'init', task, f'seed{seed}_iters{iters}')
    options = dict(variant_options(args, task, 'baseline'), **{'default_hooks.checkpoint.interval': iters})
    cfg = build_config(task, 'baseline', data_root, seed, iters, max(1, iters // 5), args.batch, args.size,
                       work_dir, options)
    fingerprint = hashlib.sha256(cfg.pretty_text.encode()).hexdigest()
    cfg.log_level = 'INFO' if args.verbose else 'WARNING'  # after the hash: --verbose trains nothing anew
    record_path = osp.join(work_dir, 'init.json')
    if osp.exists(record_path):
        with open(record_path) as file:
            record = json.load(file)
        if record.get('fingerprint') == fingerprint and osp.exists(record['checkpoint']):
            print(f"{task} start checkpoint: reusing {record['checkpoint']} "
                  f"({TASKS[task]['label']} {record['value']:.2f})", flush=True)
            return dict(record, reused=True, warning=init_warning(task, record['value']))
    run = train_one(task, 'baseline', seed, args, data_root, options, 'init', cfg=cfg)
    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    if not osp.exists(checkpoint):
        raise SystemExit(f'benchmark_accuracy: the {task} start run finished without writing {checkpoint}')
    record = dict(task=task, seed=seed, iters=iters, checkpoint=checkpoint, value=run['value'],
                  seconds=run['seconds'], val_curve=run['val_curve'], fingerprint=fingerprint)
    with open(record_path, 'w') as file:
        json.dump(record, file, indent=1)
    print(f"{task} start checkpoint: {checkpoint} ({TASKS[task]['label']} {run['value']:.2f}, "
          f"{run['seconds']:.0f} s)", flush=True)
    return dict(record, reused=False, warning=init_warning(task, run['value']))


def init_warning(task: str, value: float) -> str:
    """A line for the report when the warm start's checkpoint (metric ``value``) has not learned
    the task; empty when it has."""
    floor = TASKS[task]['init_min']
    if value >= floor:
        return ''
    return (f"the {task} start checkpoint reached {TASKS[task]['label']} {value:.2f}, below "
            f"{floor:.0f}: it has not learned the digits, and this warm start compares runs from a "
            f"barely trained model; try another --init-seed or more --init-iters")


def generator_hash() -> str:
    """8 hex digits of the source of the modules that draw and write the digit scenes."""
    import ipswap_mm.synthetic.coco as coco
    import ipswap_mm.synthetic.digits as digits
    import ipswap_mm.synthetic.scenes as scenes
    import ipswap_mm.synthetic.voc as voc
    digest = hashlib.sha256()
    for module in (digits, scenes, coco, voc):
        with open(module.__file__, 'rb') as file:
            digest.update(file.read())
    return digest.hexdigest()[:8]


def prepare_data(args) -> dict:
    """Write (once) the digit scenes in both layouts; the folder names carry the parameters."""
    from ipswap_mm.synthetic.digits import write_digit_coco_dataset, write_digit_voc_dataset
    # the generators' code in the tag: data (and the start checkpoints, whose configs name
    # the folder) are made anew when it changes, not silently reused from an older --out
    tag = (f'digits_{args.size}px_train{args.num_train}_val{args.num_val}_seed{args.data_seed}_'
           f'gen{generator_hash()}')
    base = osp.join(args.out, 'data', tag)
    roots = dict(seg=osp.join(base, 'VOCdevkit', 'VOC2012'), det=osp.join(base, 'coco'))
    writers = dict(seg=write_digit_voc_dataset, det=write_digit_coco_dataset)
    done = dict(seg='ImageSets/Segmentation/val.txt', det='annotations/instances_val2017.json')
    for task in args.task_list:
        if not osp.exists(osp.join(roots[task], done[task])):
            writers[task](roots[task], num_train=args.num_train, num_val=args.num_val, size=args.size,
                          seed=args.data_seed)
    return roots


def describe_data(args) -> str:
    from ipswap_mm.synthetic.digits import digit_split, load_digit_images
    split = digit_split(len(load_digit_images()[0]))
    return (f'{args.num_train} training and {args.num_val} validation scenes of {args.size}x{args.size} pixels '
            f'(data seed {args.data_seed}), 2-4 digits of 16-24 px each on textured backgrounds; training scenes '
            f"use load_digits images {split['train'][0]}-{split['train'][-1]}, validation scenes "
            f"{split['val'][0]}-{split['val'][-1]} (disjoint)")


def summarise(runs: list) -> list:
    """One row per (task, variant): mean and sample std over seeds, per-seed values."""
    rows, order = {}, []
    for run in runs:
        key = (run['task'], run['variant'])
        if key not in rows:
            order.append(key)
            rows[key] = dict(task=run['task'], variant=run['variant'], metric=TASKS[run['task']]['label'],
                             iters=run['iters'], seeds=[], values=[], seconds=[], cfg_options=run['cfg_options'],
                             reused_from=run.get('reused_from'))
        rows[key]['seeds'].append(run['seed'])
        rows[key]['values'].append(run['value'])
        rows[key]['seconds'].append(run['seconds'])
    result = []
    for key in order:
        row = rows[key]
        row['mean'] = statistics.fmean(row['values'])
        row['std'] = statistics.stdev(row['values']) if len(row['values']) > 1 else None
        result.append(row)
    return result


def paired_differences(rows: list) -> list:
    """IPS rows minus the baseline, seed by seed (same seeds): mean and std of the differences."""
    base = {row['task']: row for row in rows if row['variant'] == 'baseline'}
    out = []
    for row in rows:
        if row['variant'] == 'baseline' or row['task'] not in base:
            continue
        reference = dict(zip(base[row['task']]['seeds'], base[row['task']]['values']))
        diffs = [value - reference[seed] for seed, value in zip(row['seeds'], row['values']) if seed in reference]
        if diffs:
            out.append(dict(task=row['task'], variant=row['variant'], mean=statistics.fmean(diffs),
                            std=statistics.stdev(diffs) if len(diffs) > 1 else None, diffs=diffs,
                            wins=sum(d > 0 for d in diffs), n=len(diffs)))
    return out


def _fmt(value, digits: int = 2) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def row_command(row: dict, args) -> str:
    """A command that reproduces this row alone."""
    variant = 'baseline' if row['variant'] == 'baseline' else 'ips'
    parts = ['python', 'tools/benchmark_accuracy.py', '--tasks', row['task'], '--variants', variant,
             '--seeds', ','.join(str(s) for s in row['seeds']), '--iters', str(row['iters'])]
    parts += args.data_flags
    options = dict(variant_options(args, row['task'], variant), **row['cfg_options'])
    if options:
        parts += ['--cfg-options'] + [f'{key}={_option_text(value)}' for key, value in options.items()]
    return shlex.join(parts)


def _option_text(value) -> str:
    if isinstance(value, tuple):
        return '(' + ','.join(_option_text(v) for v in value) + ')'
    if isinstance(value, list):
        return '[' + ','.join(_option_text(v) for v in value) + ']'
    return str(value)


def write_report(runs: list, args, meta: dict) -> dict:
    rows = summarise(runs)
    diffs = paired_differences(rows)
    for row in rows:
        row['command'] = row_command(row, args)
    os.makedirs(args.out, exist_ok=True)
    payload = dict(meta=meta, rows=rows, differences=diffs, runs=runs)
    with open(osp.join(args.out, 'accuracy.json'), 'w') as file:
        json.dump(payload, file, indent=1)
    lines = ['# IPS efficacy on handwritten-digit scenes (scikit-learn `load_digits`)', '',
             f"Command: `{meta['command']}`", '',
             f"Run on {meta['date']}, {meta['machine']}, torch {meta['torch']} with {meta['threads']} threads; "
             f"{sum('reused_from' not in run for run in runs)} runs in {meta['total_s'] / 60:.1f} minutes.", '',
             f"Data: {meta['data']}", '']
    load_from = (args.cfg_options or {}).get('load_from')
    warnings = []
    for task in args.task_list:
        init = meta.get('init', {}).get(task)
        if init:
            start = (f"from the weights of `{init['checkpoint']}` (the baseline, seed {init['seed']}, "
                     f"{init['iters']} iterations from scratch: val {TASKS[task]['label']} {init['value']:.2f}), "
                     'with a fresh optimizer and schedule')
            warnings.append(init['warning'])
        else:
            start = f'from the weights of `{load_from}`' if load_from else 'from scratch'
        lines.append(f"- {task}: {TASKS[task]['model']}; {start}, batch {args.batch}, "
                     f"{args.iters_of[task]} iterations, validation every {args.val_interval_of[task]}.")
    lines += [f'\n**Warning:** {warning}.' for warning in warnings if warning]
    lines += ['', 'Mean ± sample standard deviation over seeds, on the val split after the last iteration.', '',
              '| task | variant | metric | mean ± std | per seed | seeds | iterations | s / run | command |',
              '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for row in rows:
        per_seed = ', '.join(f'{v:.2f}' for v in row['values'])
        variant = row['variant'] + (f" (= {row['reused_from']})" if row.get('reused_from') else '')
        lines.append(f"| {row['task']} | {variant} | {row['metric']} | {row['mean']:.2f} ± {_fmt(row['std'])} | "
                     f"{per_seed} | {','.join(map(str, row['seeds']))} | {row['iters']} | "
                     f"{statistics.fmean(row['seconds']):.0f} | `{row['command']}` |")
    if diffs:
        lines += ['', 'IPS minus baseline, paired by seed (by seed number: the two variants draw pairs and batches '
                  'from different samplers, so a seed shares no random stream between them):', '',
                  '| task | variant | mean ± std | per seed | IPS higher |', '| --- | --- | --- | --- | --- |']
        for diff in diffs:
            lines.append(f"| {diff['task']} | {diff['variant']} | {diff['mean']:+.2f} ± {_fmt(diff['std'])} | "
                         f"{', '.join(f'{d:+.2f}' for d in diff['diffs'])} | {diff['wins']} of {diff['n']} |")
    lines += ['', 'Overrides applied to both variants (`--cfg-options` keys), then to IPS only:', '']
    for task in args.task_list:
        ips_line = _options_line(IPS_OVERRIDES[task]) or "none (the config's IPS block as it is)"
        lines.append(f'- {task}: `{_options_line(OVERRIDES[task])}`; IPS only: `{ips_line}`')
    if args.cfg_options:
        ips_only = {key: value for task in args.task_list for key, value in args.ips_only[task].items()}
        shared = {key: value for key, value in args.cfg_options.items() if key not in ips_only}
        if shared:
            lines.append(f'- `--cfg-options` of this command, every run: `{_options_line(shared)}`')
        if ips_only:
            lines.append(f'- `--cfg-options` of this command, IPS runs only (keys of the IPS block, which the '
                         f'baseline config does not have): `{_options_line(ips_only)}`')
    lines += ['', 'Also changed for both variants: the digit classes (`BaseSegDataset` / `CocoDataset` with '
              '`metainfo`), no horizontal flip, seg scale jitter 0.75-1.5, AdamW (lr 3e-3, weight decay 0.01, '
              'gradient clip 35) with an iteration-based schedule (seg: poly; det: 50-iteration warm-up, then poly), '
              'no checkpoints; det loads the digits\' masks so that the swap recomputes boxes from them.',
              '', 'Curves: `curves.png` (task loss without `loss_ips_kl`, and the val metric, mean over seeds).', '']
    with open(osp.join(args.out, 'accuracy.md'), 'w') as file:
        file.write('\n'.join(lines))
    plot_curves(runs, args, osp.join(args.out, 'curves.png'))
    return payload


def _options_line(options: dict) -> str:
    return ' '.join(f'{key}={_option_text(value)}' for key, value in options.items())


def plot_curves(runs: list, args, path: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    tasks = [task for task in args.task_list if any(run['task'] == task for run in runs)]
    figure, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.4 * len(tasks)), squeeze=False)
    variants = []
    for run in runs:
        if run['variant'] not in variants:
            variants.append(run['variant'])
    colours = {name: plt.cm.tab10(i % 10) for i, name in enumerate(variants)}
    for row, task in enumerate(tasks):
        loss_axis, metric_axis = axes[row]
        for name in variants:
            group = [run for run in runs if run['task'] == task and run['variant'] == name]
            if not group:
                continue
            style = dict(color=colours[name], linewidth=2.0 if name in VARIANTS else 1.0,
                         linestyle='-' if name in VARIANTS else '--')
            length = min(len(run['losses']) for run in group)
            if length:
                task_loss = np.array([[entry['loss'] - entry.get('loss_ips_kl', 0.0)
                                       for entry in run['losses'][:length]] for run in group]).mean(axis=0)
                window = max(1, length // 25)
                smooth = np.convolve(task_loss, np.ones(window) / window, mode='valid')
                loss_axis.plot(np.arange(window, length + 1), smooth, label=name, **style)
            points = min(len(run['val_curve']) for run in group)
            if points:
                iters = [entry['iter'] for entry in group[0]['val_curve'][:points]]
                values = np.array([[entry['value'] for entry in run['val_curve'][:points]] for run in group])
                mean = values.mean(axis=0)
                metric_axis.plot(iters, mean, marker='o', markersize=3, label=name, **style)
                if len(group) > 1:
                    std = values.std(axis=0, ddof=1)
                    metric_axis.fill_between(iters, mean - std, mean + std, color=colours[name], alpha=0.15)
        loss_axis.set_title(f'{task}: training task loss (moving average, mean over seeds)', fontsize=9)
        loss_axis.set_xlabel('iteration')
        loss_axis.set_yscale('log')
        metric_axis.set_title(f"{task}: val {TASKS[task]['label']} (mean ± std over seeds)", fontsize=9)
        metric_axis.set_xlabel('iteration')
        for axis in (loss_axis, metric_axis):
            axis.legend(fontsize=7)
            axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', default='seg,det', help='comma-separated: seg, det')
    parser.add_argument('--variants', default='baseline,ips', help='comma-separated: baseline, ips')
    parser.add_argument('--seeds', default=DEFAULT_SEEDS, help='comma-separated training seeds (randomness.seed)')
    parser.add_argument('--start', choices=STARTS, default='scratch',
                        help='scratch: random weights; warm: every run starts from the baseline trained first '
                             'from scratch (make bench-accuracy)')
    parser.add_argument('--iters', type=positive_int, default=None,
                        help='training iterations of every run (default, scratch: ' +
                        ', '.join(f"{task} {spec['iters']}" for task, spec in TASKS.items()) + '; warm: ' +
                        ', '.join(f"{task} {spec['warm_iters']}" for task, spec in TASKS.items()) + ')')
    parser.add_argument('--init-seed', type=int, default=None,
                        help='--start warm: seed of the start run (default: ' +
                        ', '.join(f"{task} {spec['init_seed']}" for task, spec in TASKS.items()) + ')')
    parser.add_argument('--init-iters', type=positive_int, default=None,
                        help='--start warm: iterations of the start run (default: ' +
                        ', '.join(f"{task} {spec['init_iters']}" for task, spec in TASKS.items()) + ')')
    parser.add_argument('--val-interval', type=positive_int, default=None, help='default: iterations / 5')
    parser.add_argument('--batch', type=positive_int, default=8, help='images per batch (even: IPS batches hold pairs)')
    parser.add_argument('--size', type=positive_int, default=64, help='scene and crop side in pixels')
    parser.add_argument('--num-train', type=positive_int, default=512, help='training scenes')
    parser.add_argument('--num-val', type=positive_int, default=128, help='validation scenes')
    parser.add_argument('--data-seed', type=int, default=0, help='seed of the generated scenes')
    parser.add_argument('--sweep', nargs='+', default=[], metavar='KEY=V1,V2',
                        help='train the IPS variant once per value of KEY (every seed); adds rows')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='key=value overrides for every run (keys of the IPS block, which the baseline '
                             'config does not have: the IPS runs only)')
    parser.add_argument('--out', default='work_dirs/benchmark_accuracy')
    parser.add_argument('--verbose', action='store_true', help="MMEngine's INFO log (default: warnings only)")
    args = parser.parse_args(argv)
    args.task_list = [task.strip() for task in args.tasks.split(',') if task.strip()]
    args.variant_list = [variant.strip() for variant in args.variants.split(',') if variant.strip()]
    if not args.task_list or not args.variant_list:
        parser.error('--tasks and --variants name at least one each')
    for task in args.task_list:
        if task not in TASKS:
            parser.error(f'--tasks: unknown task {task!r} (choose from {", ".join(TASKS)})')
    for variant in args.variant_list:
        if variant not in VARIANTS:
            parser.error(f'--variants: unknown variant {variant!r} (choose from {", ".join(VARIANTS)})')
    try:
        args.seed_list = [int(seed) for seed in args.seeds.split(',') if seed.strip()]
    except ValueError:
        parser.error(f'--seeds: expected comma-separated integers, got {args.seeds!r}')
    if not args.seed_list:
        parser.error('--seeds: no seed given')
    if args.batch < 2 or args.batch % 2:
        parser.error(f'--batch must be even (IPS batches hold whole pairs), got {args.batch}')
    try:
        args.sweeps = parse_sweep(args.sweep)
    except SweepError as error:
        parser.error(str(error))
    warm = args.start == 'warm'
    if warm and 'load_from' in (args.cfg_options or {}):
        parser.error('--cfg-options load_from: --start warm trains the checkpoint its runs start from; '
                     'to start from your own, give load_from with --start scratch')
    if not warm and (args.init_seed is not None or args.init_iters is not None):
        parser.error('--init-seed and --init-iters belong to --start warm')
    args.iters_of = {task: args.iters or TASKS[task]['warm_iters' if warm else 'iters'] for task in TASKS}
    args.init_seed_of = {task: TASKS[task]['init_seed'] if args.init_seed is None else args.init_seed
                         for task in TASKS}
    args.init_iters_of = {task: args.init_iters or TASKS[task]['init_iters'] for task in TASKS}
    args.val_interval_of = {task: args.val_interval or max(1, args.iters_of[task] // 5) for task in TASKS}
    defaults = dict(size=64, num_train=512, num_val=128, data_seed=0, batch=8)
    args.data_flags = []
    for name, default in defaults.items():
        if getattr(args, name) != default:
            args.data_flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.val_interval is not None:
        args.data_flags += ['--val-interval', str(args.val_interval)]
    if warm:
        args.data_flags += ['--start', 'warm']
        for name in ('init_seed', 'init_iters'):
            if getattr(args, name) is not None:
                args.data_flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return args


def startup_config(args, task: str, variant: str, with_options: bool = False) -> dict:
    """The ``variant`` config of ``task`` as the runs get it (seed 0, no data yet), as a dict,
    with ``--cfg-options`` merged when ``with_options``; built once per task and variant (and
    merged once) and kept on ``args`` for the start-up checks and the plan."""
    cache = args.__dict__.setdefault('_startup_configs', {})
    if (task, variant, False) not in cache:
        cache[task, variant, False] = build_config(task, variant, 'data', 0, args.iters_of[task],
                                                   args.val_interval_of[task], args.batch, args.size,
                                                   osp.join(args.out, 'check'))
    if with_options and (task, variant, True) not in cache:
        cfg = copy.deepcopy(cache[task, variant, False])
        cfg.merge_from_dict(copy.deepcopy(args.cfg_options or {}))
        cache[task, variant, True] = cfg
    return cache[task, variant, with_options]._cfg_dict


def check_sweeps(args) -> None:
    """Every sweep key must exist in the IPS config of every task (after the benchmark's
    overrides), or be an option of one of the IPS block's objects that the config leaves at its
    default (``custom_hooks.0.loss.compile``), as ``--cfg-options`` takes it."""
    if not args.sweeps:
        return
    for task in args.task_list:
        cfg = startup_config(args, task, 'ips', with_options=True)
        for key, _ in args.sweeps:
            if not accepted_option(cfg, key):
                raise SweepError(f'--sweep {key}: the IPS config of task {task} ({TASKS[task]["ips"]}) has no '
                                 f'key {key!r}; IPS keys: model.data_preprocessor.batch_augments.0.<patch_size|'
                                 'swap_prob|swap_ratio|min_visible_ratio (det)|min_visible_area (det)>, '
                                 'custom_hooks.0.loss.<temperature|loss_weight|teacher|weighting>, '
                                 'custom_hooks.0.warmup_iters')


def ips_only_options(args) -> dict:
    """Per task, the ``--cfg-options`` keys of the IPS block: present in the IPS config and
    absent from the baseline config (after the benchmark's overrides). The baseline runs go
    without them (merged into a config without the block, ``custom_hooks.0.loss.weighting``
    would make ``custom_hooks`` a dict that MMEngine's runner rejects); every other key goes
    to every run."""
    result = {}
    for task in args.task_list:
        configs = {variant: startup_config(args, task, variant) for variant in VARIANTS}
        result[task] = ips_block_options(args.cfg_options or {}, configs['baseline'], configs['ips'])
    return result


def variant_options(args, task: str, variant: str) -> dict:
    """The ``--cfg-options`` that a ``variant`` run of ``task`` gets (see :func:`ips_only_options`)."""
    options = dict(args.cfg_options or {})
    if variant == 'baseline':
        for key in args.ips_only[task]:
            options.pop(key)
    return options


def plan(args) -> list:
    """(task, variant config, row name, cfg_options, reused_from) for every row, in order."""
    items = []
    for task in args.task_list:
        for variant in args.variant_list:
            items.append((task, variant, variant, variant_options(args, task, variant), None))
        if not args.sweeps:
            continue
        default = startup_config(args, task, 'ips', with_options=True)
        for key, values in args.sweeps:
            for value in values:
                name = f"ips {key.split('.')[-1]}={_option_text(value)}"
                options = dict(args.cfg_options or {}, **{key: value})
                same = lookup(default, key) == value and 'ips' in args.variant_list
                items.append((task, 'ips', name, options, 'ips' if same else None))
    return items


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    import ipswap_mm  # noqa: F401
    try:
        check_sweeps(args)
    except SweepError as error:
        raise SystemExit(f'benchmark_accuracy: {error}') from error
    args.ips_only = ips_only_options(args)
    start = time.perf_counter()
    roots = prepare_data(args)
    inits = {task: warm_start_checkpoint(task, args, roots[task]) for task in args.task_list} \
        if args.start == 'warm' else {}
    runs = []
    items = plan(args)
    total = sum(len(args.seed_list) for item in items if item[4] is None)
    done = 0
    for task, variant, name, options, reused_from in items:
        # the row's own options: a sweep value, also where --cfg-options gives its key another value
        extra = {k: v for k, v in options.items() if (args.cfg_options or {}).get(k, MISSING) != v}
        for seed in args.seed_list:
            if reused_from is not None:
                source = next(run for run in runs if run['task'] == task and run['variant'] == reused_from
                              and run['seed'] == seed)
                runs.append(dict(source, variant=name, reused_from=reused_from, cfg_options=extra))
                continue
            done += 1
            start_from = {'load_from': inits[task]['checkpoint']} if task in inits else {}
            run = train_one(task, variant, seed, args, roots[task], dict(options, **start_from), name)
            run['cfg_options'] = extra
            runs.append(run)
            print(f"[{done}/{total}] {task} {name} seed {seed}: {TASKS[task]['label']} {run['value']:.2f} "
                  f"({run['seconds']:.0f} s)", flush=True)
    meta = dict(command=shlex.join(['python', 'tools/benchmark_accuracy.py', *(sys.argv[1:] if argv is None
                                                                                  else argv)]),
                date=time.strftime('%Y-%m-%d %H:%M'), machine=f'{platform.machine()} {platform.processor()}'.strip(),
                cpus=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
                total_s=time.perf_counter() - start, seeds=args.seed_list, iters=args.iters_of, batch=args.batch,
                data=describe_data(args),
                overrides=OVERRIDES, ips_overrides=IPS_OVERRIDES, cfg_options=args.cfg_options or {},
                sweeps=[dict(key=key, values=values) for key, values in args.sweeps], start=args.start,
                init={task: {k: v for k, v in init.items() if k != 'fingerprint'} for task, init in inits.items()})
    payload = write_report(runs, args, meta)
    for row in payload['rows']:
        print(f"{row['task']:<4} {row['variant']:<40} {row['metric']:<13} {row['mean']:7.2f} ± {_fmt(row['std'])}")
    for diff in payload['differences']:
        print(f"{diff['task']:<4} {diff['variant']} - baseline: {diff['mean']:+.2f} ± {_fmt(diff['std'])} "
              f"(IPS higher in {diff['wins']} of {diff['n']} seeds)")
    for init in inits.values():
        if init['warning']:
            print(f"Warning: {init['warning']}")
    print(f"Wrote {osp.join(args.out, 'accuracy.md')}, accuracy.json and curves.png")
    if not all(math.isfinite(run['value']) for run in runs):
        raise SystemExit('benchmark_accuracy: a run produced a non-finite metric')
    return payload


if __name__ == '__main__':
    main()
