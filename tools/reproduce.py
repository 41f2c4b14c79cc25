"""Reproduction recipes on the real datasets: baseline and IPS, trained and evaluated, one table.

    python tools/reproduce.py RECIPE [--gpus N]          # train both with tools/dist_train.sh, test, write the table
    python tools/reproduce.py RECIPE --slurm PARTITION   # the same through tools/slurm_train.sh / slurm_test.sh
    python tools/reproduce.py RECIPE --check             # build both runs, read a first sample of every dataset
    python tools/reproduce.py --list

Each run goes to ``<work-root>/<recipe>/<baseline|ips>``; the table (markdown and JSON) to
``<work-root>/<recipe>/results.md``. ``--gpus`` defaults to the GPUs of the stock config's
schedule (4 for MMSegmentation's ``4xb4`` VOC configs, 8 for MMDetection's ``8xb2``). Extra
``--cfg-options`` apply to both runs, except the IPS block's keys, which the baseline config
does not have (they go to the IPS run only), e.g. a sweep point:
``--cfg-options model.data_preprocessor.batch_augments.0.patch_size=64``.
On a Slurm cluster, ``--slurm PARTITION`` trains with ``tools/slurm_train.sh`` (``--gpus``
tasks, at most 8 per node) and tests with ``tools/slurm_test.sh`` on one GPU; set
``SRUN_ARGS``, ``CPUS_PER_TASK`` as for the stock scripts.

The same command again continues where a run stopped (a job killed, a node lost): every run
trains with ``--resume`` (its latest checkpoint; on its first launch, the config's
``load_from``), a run whose training ended but whose test failed is only tested, and a run
already tested on its latest checkpoint is not trained or tested again. A run's work dir
records the options and GPUs it was started with (``reproduce_run.json``); other options or
another GPU count in that work dir stop the command before anything runs (name another
``--work-root`` for a new experiment).
"""
import argparse
import copy
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from ipswap_mm.engine.cfg_options import ips_block_options  # noqa: E402
from ipswap_mm.engine.config_walk import (  # noqa: E402
    data_root_keys,
    dataset_nodes,
    is_leaf_dataset,
    leaf_dataset_keys,
    loader_evaluator_keys,
    missing_data_paths,
)
from tools.arguments import positive_int  # noqa: E402

VARIANTS = ('baseline', 'ips')

# gpus: those of the stock config's schedule; scale: to percent (MMDetection's metrics are fractions)
VOC_AUG = 'Pascal VOC 2012 with SegmentationClassAug'
RECIPES = {
    'voc12aug_deeplabv3_r50': dict(scope='mmseg', metrics=['mIoU'], gpus=4, scale=1, data=VOC_AUG,
                                   baseline='baseline_deeplabv3_voc.py', ips='ipswap_deeplabv3_voc.py'),
    'voc12aug_deeplabv3_r101': dict(scope='mmseg', metrics=['mIoU'], gpus=4, scale=1, data=VOC_AUG,
                                    baseline='baseline_deeplabv3_r101_voc.py', ips='ipswap_deeplabv3_r101_voc.py'),
    'voc0712_faster_rcnn': dict(scope='mmdet', metrics=['pascal_voc/mAP'], gpus=8, scale=100,
                                data='Pascal VOC 2007 + 2012', baseline='baseline_faster-rcnn_r50_fpn_voc0712.py',
                                ips='ipswap_faster-rcnn_r50_fpn_voc0712.py'),
    'coco_retinanet': dict(scope='mmdet', metrics=['coco/bbox_mAP'], gpus=8, scale=100, data='COCO 2017',
                           baseline='baseline_retinanet_r50_fpn_1x_coco.py', ips='ipswap_retinanet_r50_fpn_1x_coco.py'),
    'coco_mask_rcnn': dict(scope='mmdet', metrics=['coco/bbox_mAP', 'coco/segm_mAP'], gpus=8, scale=100,
                           data='COCO 2017', baseline='baseline_mask-rcnn_r50_fpn_1x_coco.py',
                           ips='ipswap_mask-rcnn_r50_fpn_1x_coco.py'),
}


def load_config(name: str, cfg_options: dict = None):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def variant_options(recipe: str, cfg_options: dict) -> dict:
    """``{variant: its --cfg-options}``: all of them for the IPS run; for the baseline run, all
    but the IPS block's keys, which its config does not have (merged in, MMEngine would
    create them: see :mod:`ipswap_mm.engine.cfg_options`)."""
    spec = RECIPES[recipe]
    configs = {variant: load_config(spec[variant]).to_dict() for variant in VARIANTS}
    ips_only = ips_block_options(cfg_options, configs['baseline'], configs['ips'])
    return dict(baseline={key: value for key, value in cfg_options.items() if key not in ips_only},
                ips=dict(cfg_options))


LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def check_recipe(recipe: str, cfg_options: dict = None, work_root: str = 'work_dirs/reproduce') -> None:
    """Build both runs' models and their training, validation and test dataloaders, and load a
    first sample of every dataset (each a ``ConcatDataset`` joins) and the evaluators'
    annotation files; raise naming the missing data and the ``data_root`` keys to set. The IPS
    run's pair sampler scans the dataset's classes once, into the cache the run will read
    (``<work_root>/<recipe>/ips/ipswap_cache``)."""
    from mmengine.registry import HOOKS, MODELS, init_default_scope
    from mmengine.runner import Runner

    import ipswap_mm  # noqa: F401
    spec = RECIPES[recipe]
    for variant, options in variant_options(recipe, cfg_options or {}).items():
        cfg = load_config(spec[variant], options)
        init_default_scope(cfg.get('default_scope', spec['scope']))
        MODELS.build(cfg.model)
        for hook in cfg.get('custom_hooks') or []:  # IPSDistillHook builds its loss: a bad option fails now
            hook = copy.deepcopy(hook)
            hook.pop('priority', None)  # the runner's, not the hook's argument
            HOOKS.build(hook)
        sizes = {}
        for name in LOADERS:
            if not cfg.get(name):
                continue
            loader_cfg = copy.deepcopy(cfg[name])
            sampler = loader_cfg.get('sampler') or {}
            if sampler.get('type') == 'IntraClassPairSampler' and sampler.get('cache_dir') is None:
                sampler['cache_dir'] = osp.join(work_root, recipe, variant, 'ipswap_cache')
            try:
                loader = Runner.build_dataloader(loader_cfg, seed=0)
                for part in filter(is_leaf_dataset, dataset_nodes(loader.dataset)):  # inside every wrapper
                    part[0]  # reads an image and its annotations through the pipeline
                for _, metric in loader_evaluator_keys(cfg, name):
                    if metric.get('ann_file') and not osp.exists(metric['ann_file']):
                        raise FileNotFoundError(f'the evaluator\'s ann_file {metric["ann_file"]}')
            except (AssertionError, OSError) as error:  # MMSegmentation asserts the image folder exists
                roots = sorted({d.get('data_root', '') for _, d in leaf_dataset_keys(cfg[name].dataset)})
                missing = missing_data_paths(cfg, [name])
                detail = str(error) or (f'missing: {", ".join(missing)}' if missing else type(error).__name__)
                keys = [f'{key}=...' for key in data_root_keys(cfg, LOADERS)]
                raise SystemExit(f'{recipe}: the {spec["data"]} data was not found ({detail}). Put it under '
                                 f'{", ".join(roots)} relative to {os.getcwd()} (the layout of the MMSegmentation '
                                 '/ MMDetection dataset docs), or point the config at it: --cfg-options '
                                 f'{" ".join(keys)}') from error
            sizes[name.split('_')[0]] = len(loader.dataset)
        print(f'{recipe} {variant}: {spec[variant]} builds (model and custom hooks; training, validation and test '
              f'dataloaders, a first sample of each), images: '
              + ', '.join(f'{split} {size}' for split, size in sizes.items()))


def run_recipe(recipe: str, gpus: int, work_root: str, cfg_options: list, slurm_partition: str = None) -> str:
    """Train and test both runs, one after the other, and write the table. Without
    ``slurm_partition``: ``tools/dist_train.sh`` on this machine, then ``tools/test.py``;
    with it: ``tools/slurm_train.sh`` and ``tools/slurm_test.sh`` (one GPU) on that partition."""
    spec = RECIPES[recipe]
    keys = variant_options(recipe, parse_options(cfg_options))
    tools = osp.join(ROOT, 'tools')
    # the launch scripts start this interpreter, not the first ``python`` on PATH
    env = dict(os.environ, PYTHON=sys.executable)
    options = {variant: [item for item in cfg_options if item.partition('=')[0] in keys[variant]]
               for variant in VARIANTS}
    records = {variant: RunRecord(osp.join(work_root, recipe, variant), spec[variant], options[variant], gpus)
               for variant in VARIANTS}
    for record in records.values():  # before anything runs: no run continues under other settings
        record.check()
    results = {}
    for variant in VARIANTS:
        record = records[variant]
        if record.tested() is not None:
            print(f'{recipe} {variant}: tested on {record.tested()} already ({record.path}): not run again')
            results[variant] = record.metrics()
            continue
        extra = ['--cfg-options', *options[variant]] if options[variant] else []
        config = osp.join(ROOT, 'configs', spec[variant])
        work_dir = record.work_dir
        metrics_file = record.metrics_file
        job = f'ips-{recipe}-{variant}'
        if slurm_partition is None:
            train = [osp.join(tools, 'dist_train.sh'), config, str(gpus), '--work-dir', work_dir]
            test = [sys.executable, osp.join(tools, 'test.py'), config]
            test_env = None
        else:
            train = [osp.join(tools, 'slurm_train.sh'), slurm_partition, job, config, work_dir]
            # GPUS_PER_NODE (a node's GPUs, 8 unless set) capped at the job's: no idle GPUs reserved
            per_node = min(gpus, int(os.environ.get('GPUS_PER_NODE', 8)))
            env.update(GPUS=str(gpus), GPUS_PER_NODE=str(per_node))
            test = [osp.join(tools, 'slurm_test.sh'), slurm_partition, job, config]
            test_env = dict(env, GPUS='1', GPUS_PER_NODE='1')
        record.start()
        if record.trained() is None:  # else trained to its end already; its test is what failed
            run_step(f'{recipe} {variant}: training', [*train, '--resume', *extra], env, work_dir)
            record.update(trained_checkpoint=record.latest_checkpoint())
        checkpoint = record.latest_checkpoint()
        run_step(f'{recipe} {variant}: testing {checkpoint}',
                 [*test, checkpoint, '--work-dir', work_dir, '--metrics', metrics_file, *extra], test_env, work_dir)
        record.update(tested_checkpoint=checkpoint)
        results[variant] = record.metrics()
    return write_table(recipe, results, osp.join(work_root, recipe))


def run_step(what: str, command: list, env: dict, work_dir: str) -> None:
    """Run a training or test command; if it fails, stop saying where its log is and how to go on."""
    try:
        subprocess.run(command, check=True, env=env)
    except subprocess.CalledProcessError as error:
        raise SystemExit(f'{what} failed (exit status {error.returncode}); its log is under {work_dir}. The same '
                         'command again continues: training resumes from the latest checkpoint, a run already '
                         'tested is not run again') from None


class RunRecord:
    """What ``reproduce_run.json`` in a run's work dir says: the config, ``--cfg-options`` and
    GPUs the run was started with, the checkpoint its training ended with and the one its
    metrics (``test_metrics.json``) are of."""

    def __init__(self, work_dir: str, config: str, options: list, gpus: int) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, 'reproduce_run.json')
        self.metrics_file = osp.join(work_dir, 'test_metrics.json')
        self.settings = dict(config=config, cfg_options=list(options), gpus=gpus)
        self.saved = {}
        if osp.exists(self.path):
            try:
                with open(self.path) as file:
                    self.saved = json.load(file)
                if not isinstance(self.saved, dict):
                    raise ValueError(f'a JSON {type(self.saved).__name__}, not an object')
            except ValueError as error:
                raise SystemExit(f'{self.path} is no JSON record ({error}); it records the settings of the run in '
                                 f'{self.work_dir}: {self._settings_json()} for this command. Write that to it to '
                                 'continue the run (nothing was started)') from None

    def check(self) -> None:
        """Raise if the work dir holds a run started with other settings, or one this tool did not start."""
        if not self.saved and self.latest_checkpoint(missing_ok=True) is not None:
            raise SystemExit(f'{self.work_dir} holds a run with no {self.path} (started by hand, or by '
                             'tools/reproduce.py before 2026-11-25): its settings are unknown, so it is not continued '
                             '(nothing was started). Give another --work-root, or, if it ran with the settings of this '
                             f'command, write {self._settings_json()} to {self.path} to continue it')
        saved = {key: self.saved.get(key) for key in self.settings}
        if self.saved and saved != self.settings:
            differ = ', '.join(f'{key} {saved[key]!r} there, {value!r} now'
                               for key, value in self.settings.items() if saved[key] != value)
            raise SystemExit(f'{self.work_dir} holds a run started with other settings ({differ}; {self.path}): '
                             'give the same options and --gpus to continue it, or another --work-root for a new '
                             'run (nothing was started)')

    def tested(self):
        """The checkpoint the metrics are of, if it is still the run's latest; else ``None``."""
        checkpoint = self.saved.get('tested_checkpoint')
        if checkpoint and osp.exists(self.metrics_file) and checkpoint == self.latest_checkpoint(missing_ok=True):
            return checkpoint
        return None

    def trained(self):
        """The checkpoint training ended with, if it is still the run's latest; else ``None``
        (a resume would only load every trained batch again to skip it)."""
        checkpoint = self.saved.get('trained_checkpoint')
        return checkpoint if checkpoint and checkpoint == self.latest_checkpoint(missing_ok=True) else None

    def latest_checkpoint(self, missing_ok: bool = False):
        """The checkpoint MMEngine's ``last_checkpoint`` names (``None`` if none, with ``missing_ok``)."""
        path = osp.join(self.work_dir, 'last_checkpoint')
        if not osp.exists(path):
            if missing_ok:
                return None
            raise SystemExit(f'training wrote no {path}: no checkpoint to test (see the log under {self.work_dir})')
        with open(path) as file:
            return file.read().strip()

    def start(self) -> None:
        """Record the settings on a run's first launch (:meth:`check` saw any earlier ones agree)."""
        if not self.saved:
            self.update(**self.settings)

    def update(self, **values) -> None:
        """Add ``values`` to the record; written whole or not at all (a temporary file, renamed)."""
        self.saved.update(values)
        os.makedirs(self.work_dir, exist_ok=True)
        temporary = f'{self.path}.tmp'
        with open(temporary, 'w') as file:
            json.dump(self.saved, file, indent=2)
        os.replace(temporary, self.path)

    def metrics(self) -> dict:
        with open(self.metrics_file) as file:
            return json.load(file)

    def _settings_json(self) -> str:
        return json.dumps(self.settings)


def write_table(recipe: str, results: dict, folder: str) -> str:
    spec = RECIPES[recipe]
    # MMDetection's metrics are fractions rounded to 3 digits: shown in percent, to 0.1
    digits = 2 if spec['scale'] == 1 else 1
    lines = [f'| {recipe} | ' + ' | '.join(f'{metric} (%)' for metric in spec['metrics']) + ' |',
             '| --- |' + ' ---: |' * len(spec['metrics'])]
    for variant in VARIANTS:
        values = [f"{results[variant].get(metric, float('nan')) * spec['scale']:.{digits}f}"
                  for metric in spec['metrics']]
        lines.append(f'| {variant} ({spec[variant]}) | ' + ' | '.join(values) + ' |')
    table = '\n'.join(lines) + '\n'
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'results.md'), 'w') as file:
        file.write(table)
    with open(osp.join(folder, 'results.json'), 'w') as file:
        json.dump(results, file, indent=2)
    return table


def parse_options(items: list) -> dict:
    """``key=value`` items, as ``--cfg-options`` takes them, as a dict (values parsed as MMEngine does);
    an item without ``=`` stops here, as the stock tools would stop at it later."""
    from mmengine.config import DictAction
    bad = [item for item in items if '=' not in item]
    if bad:
        raise SystemExit(f'--cfg-options takes key=value items; got {" ".join(bad)}')
    return {key: DictAction._parse_iterable(value) for key, _, value in (item.partition('=') for item in items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('recipe', nargs='?', choices=sorted(RECIPES))
    parser.add_argument('--gpus', type=positive_int,
                        help="processes (GPUs); default: the stock config's (4 seg, 8 det)")
    parser.add_argument('--slurm', metavar='PARTITION',
                        help='train and test through tools/slurm_train.sh and slurm_test.sh on this partition')
    parser.add_argument('--work-root', default='work_dirs/reproduce')
    parser.add_argument('--check', action='store_true',
                        help='only build both runs (models; training, validation and test dataloaders), '
                             "load a first sample of each dataset and check the evaluators' ann_file")
    parser.add_argument('--list', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help="key=value overrides for both runs (the IPS block's keys: the IPS run only)")
    args = parser.parse_args()
    if args.list or not args.recipe:
        for name, spec in RECIPES.items():
            print(f"{name:<26} {spec['data']:<42} {spec['baseline']} vs {spec['ips']}")
        if args.list or len(sys.argv) == 1:
            return
        # options without a recipe (--cfg-options, which takes every word after it, also takes a recipe named later)
        parser.error('name a recipe (above), before --cfg-options: reproduce.py RECIPE [--check] '
                     '[--cfg-options key=value ...]')
    check_recipe(args.recipe, parse_options(args.cfg_options), args.work_root)
    if not args.check:
        gpus = args.gpus or RECIPES[args.recipe]['gpus']
        print(run_recipe(args.recipe, gpus, args.work_root, args.cfg_options, args.slurm))


if __name__ == '__main__':
    main()
