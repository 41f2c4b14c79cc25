"""Evaluate a checkpoint with MMEngine's Runner, ``ipswap_mm`` imported; it reads any MMEngine
checkpoint under torch >= 2.6. Works for the project's configs and for stock baseline configs.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options k=v ...]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

import ipswap_mm  # noqa: E402,F401
from ipswap_mm.engine import trusted_checkpoint_globals  # noqa: E402
from ipswap_mm.engine.launch import build_runner, load_run_config  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', help='dump the metrics to this JSON/pickle file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if args.out and not args.out.endswith(('.json', '.pkl', '.pickle', '.yaml', '.yml')):
        parser.error(f'--out {args.out}: the metrics are written as .json, .pkl or .yaml; name such a file')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    runner = build_runner(cfg)
    with trusted_checkpoint_globals():
        metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
