"""Reproduction recipes on the real datasets: baseline and IPS, trained and evaluated, one table.

    python tools/reproduce.py RECIPE --gpus 8            # train both with tools/dist_train.sh, test, write the table
    python tools/reproduce.py RECIPE --check             # build the full configs and datasets only
    python tools/reproduce.py --list

Each run goes to ``<work-root>/<recipe>/<baseline|ips>``; the table (markdown and JSON) to
``<work-root>/<recipe>/results.md``. Extra ``--cfg-options`` apply to both runs, e.g. a
sweep point: ``--cfg-options model.data_preprocessor.batch_augments.0.patch_size=64``.
On a Slurm cluster, run the same configs with the stock ``slurm_train.sh`` of MMSegmentation
/ MMDetection (the configs carry ``custom_imports``).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

RECIPES = {
    'voc12aug_deeplabv3_r50': dict(scope='mmseg', metrics=['mIoU'], data='Pascal VOC 2012 with SegmentationClassAug',
                                   baseline='baseline_deeplabv3_voc.py', ips='ipswap_deeplabv3_voc.py'),
    'voc12aug_deeplabv3_r101': dict(scope='mmseg', metrics=['mIoU'], data='Pascal VOC 2012 with SegmentationClassAug',
                                    baseline='baseline_deeplabv3_r101_voc.py', ips='ipswap_deeplabv3_r101_voc.py'),
    'voc0712_faster_rcnn': dict(scope='mmdet', metrics=['pascal_voc/mAP'], data='Pascal VOC 2007 + 2012',
                                baseline='baseline_faster-rcnn_r50_fpn_voc0712.py',
                                ips='ipswap_faster-rcnn_r50_fpn_voc0712.py'),
    'coco_retinanet': dict(scope='mmdet', metrics=['coco/bbox_mAP'], data='COCO 2017',
                           baseline='baseline_retinanet_r50_fpn_1x_coco.py', ips='ipswap_retinanet_r50_fpn_1x_coco.py'),
    'coco_mask_rcnn': dict(scope='mmdet', metrics=['coco/bbox_mAP', 'coco/segm_mAP'], data='COCO 2017',
                           baseline='baseline_mask-rcnn_r50_fpn_1x_coco.py', ips='ipswap_mask-rcnn_r50_fpn_1x_coco.py'),
}


def load_config(name: str, cfg_options: dict = None):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def check_recipe(recipe: str, cfg_options: dict = None) -> None:
    """Build both configs and their training datasets; raise naming the missing data."""
    from mmengine.registry import DATASETS, init_default_scope

    import ipswap_mm  # noqa: F401
    from ipswap_mm.synthetic.small_run import leaf_datasets
    spec = RECIPES[recipe]
    for variant in ('baseline', 'ips'):
        cfg = load_config(spec[variant], cfg_options)
        init_default_scope(cfg.get('default_scope', spec['scope']))
        dataset_cfg = cfg.train_dataloader.dataset
        try:
            dataset = DATASETS.build(dataset_cfg)
        except (AssertionError, OSError) as error:  # MMSegmentation asserts the ann_file exists
            roots = sorted({d.get('data_root', '') for d in leaf_datasets(dataset_cfg)})
            raise SystemExit(f'{recipe}: the {spec["data"]} data was not found ({error}). Put it under '
                             f'{", ".join(roots)} relative to {os.getcwd()} (the layout of the MMSegmentation / '
                             'MMDetection dataset docs), or pass --cfg-options with the data_root keys.') from error
        print(f'{recipe} {variant}: {spec[variant]} builds, {len(dataset)} training images')


def run_recipe(recipe: str, gpus: int, work_root: str, cfg_options: list) -> str:
    spec = RECIPES[recipe]
    results = {}
    extra = ['--cfg-options', *cfg_options] if cfg_options else []
    for variant in ('baseline', 'ips'):
        config = osp.join(ROOT, 'configs', spec[variant])
        work_dir = osp.join(work_root, recipe, variant)
        subprocess.run([osp.join(ROOT, 'tools', 'dist_train.sh'), config, str(gpus), '--work-dir', work_dir, *extra],
                       check=True)
        with open(osp.join(work_dir, 'last_checkpoint')) as file:
            checkpoint = file.read().strip()
        metrics_file = osp.join(work_dir, 'test_metrics.json')
        subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), config, checkpoint, '--work-dir', work_dir,
                        '--out', metrics_file, *extra], check=True)
        with open(metrics_file) as file:
            results[variant] = json.load(file)
    return write_table(recipe, results, osp.join(work_root, recipe))


def write_table(recipe: str, results: dict, folder: str) -> str:
    spec = RECIPES[recipe]
    lines = [f'| {recipe} | ' + ' | '.join(spec['metrics']) + ' |', '| --- |' + ' --- |' * len(spec['metrics'])]
    for variant in ('baseline', 'ips'):
        values = [f"{results[variant].get(metric, float('nan')):.2f}" for metric in spec['metrics']]
        lines.append(f'| {variant} ({spec[variant]}) | ' + ' | '.join(values) + ' |')
    table = '\n'.join(lines) + '\n'
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'results.md'), 'w') as file:
        file.write(table)
    with open(osp.join(folder, 'results.json'), 'w') as file:
        json.dump(results, file, indent=2)
    return table


def main() -> None:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('recipe', nargs='?', choices=sorted(RECIPES))
    parser.add_argument('--gpus', type=int, default=8)
    parser.add_argument('--work-root', default='work_dirs/reproduce')
    parser.add_argument('--check', action='store_true', help='only build the configs and datasets')
    parser.add_argument('--list', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='key=value overrides for both runs')
    args = parser.parse_args()
    if args.list or not args.recipe:
        for name, spec in RECIPES.items():
            print(f"{name:<26} {spec['data']:<42} {spec['baseline']} vs {spec['ips']}")
        return
    overrides = {}
    for item in args.cfg_options:
        key, _, value = item.partition('=')
        overrides[key] = DictAction._parse_iterable(value)
    check_recipe(args.recipe, overrides)
    if not args.check:
        print(run_recipe(args.recipe, args.gpus, args.work_root, args.cfg_options))


if __name__ == '__main__':
    main()
