"""Distributed set-up that MMEngine 0.10.7 gets wrong on CPU-only machines.

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps the model in
DDP with ``device_ids=[LOCAL_RANK]``; both fail without a GPU. On such machines
:func:`prepare_distributed` starts the process group with gloo itself (MMEngine then
skips its own initialisation), passes ``device_ids=None`` to the DDP wrapper and turns
SyncBN (CUDA-only) into BN. Training then runs through the same runner, sampler and
model wrapper code as on GPUs. With a GPU it changes nothing.
"""
from __future__ import annotations

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


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
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    _sync_bn_to_bn(cfg.model)
