"""Evaluate a checkpoint with MMEngine's Runner, ``ipswap_mm`` imported; it reads any MMEngine
checkpoint under torch >= 2.6. Works for the project's configs and for stock baseline configs,
with the stock tools' options (of MMDetection's or MMSegmentation's ``test.py``, after the
config's ``default_scope``), and ``--metrics`` to write the metrics to a file.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out PATH] [--metrics FILE]
        [--show] [--show-dir DIR] [--wait-time S] [--tta] [--cfg-options k=v ...]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402

import ipswap_mm  # noqa: E402,F401
from ipswap_mm.engine import trusted_checkpoint_globals  # noqa: E402
from ipswap_mm.engine.launch import build_runner, check_data, close_distributed, load_run_config  # noqa: E402

METRIC_FILES = ('.json', '.pkl', '.pickle', '.yaml', '.yml')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', help='as the stock tools: MMDetection, a .pkl file to dump the predictions to '
                        '(offline evaluation); MMSegmentation, a folder for the predicted label maps')
    parser.add_argument('--metrics', help='write the metrics to this .json, .pkl or .yaml file (rank 0)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save the painted predictions here (under the run\'s work_dir/timestamp)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (the config\'s tta_model and '
                        'tta_pipeline)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.metrics and not args.metrics.endswith(METRIC_FILES):
        parser.error(f'--metrics {args.metrics}: the metrics are written as .json, .pkl or .yaml; name such a file')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def apply_test_options(cfg: Config, args: argparse.Namespace) -> Config:
    """The stock ``test.py``'s config changes for ``--show``, ``--show-dir``, ``--tta`` and,
    for MMSegmentation, ``--out`` (MMDetection's ``--out`` needs the built runner: :func:`main`)."""
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError("--show / --show-dir need default_hooks.visualization=dict(type='...VisualizationHook')")
        hook['draw'] = True
        if args.show:
            hook['show'] = True
            hook['wait_time'] = args.wait_time
        if args.show_dir:
            if cfg.get('default_scope') == 'mmseg':
                cfg.visualizer['save_dir'] = args.show_dir
            else:
                hook['test_out_dir'] = args.show_dir
    if args.tta:
        missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
        if missing:
            raise ValueError(f'--tta needs {" and ".join(missing)} in the config (MMDetection\'s stock test.py makes '
                             'a flip default; set them, e.g. from a stock config that has them)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = ConfigDict({**cfg.tta_model, 'module': cfg.model})  # a tta_model's own module replaced
    if args.out and cfg.get('default_scope') == 'mmseg':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.out and cfg.get('default_scope') != 'mmseg' and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--out {args.out}: MMDetection dumps the predictions to a .pkl file (--metrics FILE '
                         'writes the metrics)')
    cfg.load_from = args.checkpoint
    cfg = apply_test_options(cfg, args)
    check_data(cfg, ['test_dataloader'])
    runner = build_runner(cfg)
    if args.out and cfg.get('default_scope') != 'mmseg':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    with trusted_checkpoint_globals():
        metrics = runner.test()
    if args.metrics:
        from mmengine.dist import get_rank
        from mmengine.fileio import dump
        if get_rank() == 0:
            dump(metrics, args.metrics)
    close_distributed()
    return metrics


if __name__ == '__main__':
    main()
