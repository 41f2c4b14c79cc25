"""What the project's tools do before MMEngine's Runner takes over.

:func:`load_run_config` reads a config the way the stock ``train.py`` / ``test.py`` do
(``--cfg-options``, ``--work-dir``, ``--launcher``) and prepares distributed training:

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps the model in
DDP with ``device_ids=[LOCAL_RANK]``; both fail without a GPU. On such machines
:func:`prepare_distributed` starts the process group with gloo itself (MMEngine then
skips its own initialisation), passes ``device_ids=None`` to the DDP wrapper and turns
SyncBN (CUDA-only) into BN. Training then runs through the same runner, sampler and
model wrapper code as on GPUs. With a GPU it changes nothing.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from .config_walk import data_root_keys, missing_data_paths


def _sync_bn_to_bn(node) -> None:
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def prepare_distributed(cfg: Config) -> None:
    """Make ``cfg.launcher == 'pytorch'`` work on a machine without CUDA (gloo on the CPU)."""
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    # assigned key by key: ConfigDict.setdefault stores a converted copy, not the dict it returns
    env_cfg = cfg.get('env_cfg') or {}
    cfg.env_cfg = {**env_cfg, 'dist_cfg': {**(env_cfg.get('dist_cfg') or {}), 'backend': 'gloo'}}
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    _sync_bn_to_bn(cfg.model)


def load_run_config(config: str, cfg_options: Optional[dict], work_dir: Optional[str], launcher: str) -> Config:
    """The config as the stock tools build it: overrides, work dir (default
    ``./work_dirs/<config name>``), launcher; then :func:`prepare_distributed`."""
    if not osp.isfile(config):
        raise SystemExit(f'config file not found: {config} (relative to {osp.abspath(".")})')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    prepare_distributed(cfg)
    return cfg


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume``: ``None`` (not given), ``'auto'`` (the latest checkpoint in the work dir) or
    a checkpoint path.

    ``'auto'`` with no checkpoint in the work dir yet (a preemptible job's first launch, whose
    script always passes ``--resume``) leaves the config as it is, ``load_from`` included:
    MMDetection's stock ``train.py`` clears ``load_from`` and MMEngine, finding nothing to
    resume, then trains from random weights without a word; MMSegmentation's resumes from
    ``load_from`` itself, also when the work dir holds a later checkpoint.
    """
    if resume is None:
        return
    if resume != 'auto':
        cfg.resume, cfg.load_from = True, resume
    elif find_latest_checkpoint(cfg.work_dir) is not None:
        cfg.resume, cfg.load_from = True, None
    elif cfg.get('load_from'):
        print_log(f'--resume: no checkpoint in {cfg.work_dir} yet, so the run starts from '
                  f'load_from={cfg.load_from}', logger='current')


def check_data(cfg: Config, loaders: Sequence[str]) -> None:
    """Stop, naming the missing files and the keys to set, when data the datasets of ``loaders``
    (names of the config's dataloaders) or their evaluators name is not on the local disk:
    before the model is built, where MMSegmentation and MMDetection fail later and name no key
    (data behind a storage backend or at a URI is not checked)."""
    missing = missing_data_paths(cfg, loaders)
    if missing:
        keys = ' '.join(f'{key}={"FILE" if key.endswith("ann_file") else "DIR"}'
                        for key in data_root_keys(cfg, loaders))
        raise SystemExit(f'The data this config reads was not found: {", ".join(missing)} (relative to '
                         f'{osp.abspath(".")}). Put it there (the layout of the MMSegmentation / MMDetection '
                         f'dataset docs), or point the config at it: --cfg-options {keys}')


def training_loaders(cfg: Config) -> list:
    """The dataloaders a training run reads: the training one, and the validation one when the
    config validates (``val_cfg``)."""
    return ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])


def close_distributed() -> None:
    """End the process group a distributed run started, as its last step: a gloo group left to
    the interpreter's exit aborted now and then (``terminate called without an active
    exception``, two runs in eight of a two-process ``tools/dist_test.sh`` on this CPU), and
    torchrun then failed the run that had finished."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """``Runner.from_cfg``, or the registered runner the config names in ``runner_type``."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
