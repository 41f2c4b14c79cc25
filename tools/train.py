"""Train with MMEngine's Runner, ``ipswap_mm`` imported: the stock ``train.py`` of MMSegmentation
and MMDetection, plus CPU multi-process training (gloo) and ``--resume`` of any MMEngine checkpoint under torch >= 2.6.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr] [--cfg-options k=v ...]
    torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

import ipswap_mm  # noqa: E402,F401 - registers IPS
from ipswap_mm.engine import trusted_checkpoint_globals  # noqa: E402
from ipswap_mm.engine.launch import (  # noqa: E402
    apply_resume,
    build_runner,
    check_data,
    close_distributed,
    load_run_config,
    training_loaders,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor or detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest one in the work dir '
                        '(none there yet: start as configured, from load_from if set)')
    parser.add_argument('--amp', action='store_true', default=False, help='enable automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate to the total batch size (auto_scale_lr in the config)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'enable' not in cfg.get('auto_scale_lr', {}) or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('--auto-scale-lr needs auto_scale_lr = dict(enable=False, base_batch_size=N) in the '
                             'config (MMDetection configs have it; N: the total batch size the learning rate is for)')
        cfg.auto_scale_lr.enable = True
    apply_resume(cfg, args.resume)
    check_data(cfg, training_loaders(cfg))
    runner = build_runner(cfg)
    with trusted_checkpoint_globals():  # the checkpoint the user names, as before torch 2.6
        runner.train()
    close_distributed()


if __name__ == '__main__':
    main()
