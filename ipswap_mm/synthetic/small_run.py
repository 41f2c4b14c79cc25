"""Shrink a full training config to a short CPU run on generated data (demo, tests, benchmarks).

Only the input size (resize scales, crops, pads), the schedule, the batch size when asked
and what a CPU machine without internet needs change: ``data_root``, no pretrained
download, 0 data workers. The model, the IPS settings and everything else stay as
configured; each function lists what it changes.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config

from ..engine.config_walk import dataset_config_keys, evaluator_keys, leaf_datasets

RESIZE_STEPS = ('RandomResize', 'Resize')


def shrink_seg_config(cfg: Config, data_root: str, crop: int, iters: int, work_dir: str,
                      batch_size: Optional[int] = None) -> Config:
    """Turn an iteration-based MMSegmentation training config into an ``iters``-iteration CPU run.

    Changes only: the work dir; ``model.pretrained=None``; ``model.data_preprocessor.size``,
    every ``RandomCrop``'s ``crop_size`` and every ``Pad``'s ``size`` to ``crop x crop``;
    the ``scale`` of every ``Resize`` / ``RandomResize`` step to ``(4 crop, crop)``;
    ``train_cfg.max_iters`` (validation is left to the caller); param schedulers' ``end``
    clipped to ``iters``; a checkpoint at the end; the log interval; 0 data workers; every
    dataset's ``data_root``; and ``train_dataloader.batch_size`` when ``batch_size`` is given.
    """
    crop_size = (crop, crop)
    cfg.work_dir = work_dir
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.size = crop_size
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_begin = cfg.train_cfg.val_interval = iters + 1  # evaluation is run separately
    for scheduler in cfg.param_scheduler:
        scheduler.end = min(scheduler.get('end', iters), iters)
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = max(1, iters // 8)
    cfg.env_cfg.cudnn_benchmark = False
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    scale = (crop * 4, crop)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        for dataset in leaf_datasets(cfg[loader].dataset):
            dataset.data_root = data_root
            for step in dataset.pipeline:
                if step['type'] in RESIZE_STEPS and 'scale' in step:
                    step['scale'] = scale
                if step['type'] == 'RandomCrop':
                    step['crop_size'] = crop_size
                if step['type'] == 'Pad':
                    step['size'] = crop_size
    return cfg


def shrink_det_config(cfg: Config, data_root: str, scale: Tuple[int, int], epochs: int, work_dir: str,
                      batch_size: Optional[int] = None, warmup_iters: int = 2) -> Config:
    """Turn an epoch-based MMDetection training config into an ``epochs``-epoch CPU run.

    Changes only: the work dir; every dataset's ``data_root`` (inside ``RepeatDataset`` /
    ``ConcatDataset`` wrappers, whose repeats become 1); the ``scale`` ``(w, h)`` of every
    ``Resize`` / ``RandomResize`` step; ``model.backbone.init_cfg=None`` (no pretrained
    download); 0 data workers; ``train_cfg.max_epochs`` (MMEngine's epoch loop validates
    after the last epoch, on the generated val set); param schedulers' ``end`` clipped to
    ``epochs`` (``by_epoch``) or ``warmup_iters`` (iteration-based); a checkpoint at the
    end; a log line every iteration; the evaluators' ``ann_file`` (COCO) pointing at the
    generated annotations; and ``train_dataloader.batch_size`` when ``batch_size`` is
    given. Make the generated training set small: one epoch is
    ``len(train set) / batch_size`` iterations.
    """
    if 'max_epochs' not in cfg.train_cfg:
        raise ValueError(f'shrink_det_config needs an epoch-based train_cfg (max_epochs), got {cfg.train_cfg}')
    cfg.work_dir = work_dir
    cfg.model.backbone.init_cfg = None
    cfg.train_cfg.max_epochs = epochs
    schedulers = cfg.param_scheduler
    for scheduler in schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]:
        limit = epochs if scheduler.get('by_epoch', True) else warmup_iters
        scheduler.end = min(scheduler.get('end', limit), limit)
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.cudnn_benchmark = False
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        for _, node in dataset_config_keys(cfg[loader].dataset):
            if node.get('type') == 'RepeatDataset':
                node['times'] = 1
        for dataset in leaf_datasets(cfg[loader].dataset):
            dataset.data_root = data_root
            for step in dataset.pipeline:
                if step['type'] in RESIZE_STEPS and 'scale' in step:
                    step['scale'] = tuple(scale)
    for evaluator_key, loader in (('val_evaluator', 'val_dataloader'), ('test_evaluator', 'test_dataloader')):
        for _, evaluator in evaluator_keys(cfg, evaluator_key):
            if 'ann_file' in evaluator:
                datasets = leaf_datasets(cfg[loader].dataset)
                if len(datasets) != 1:
                    raise ValueError(f'{evaluator_key}.ann_file: {loader}.dataset holds {len(datasets)} '
                                     'datasets; shrink_det_config cannot tell which annotations it evaluates')
                evaluator.ann_file = osp.join(data_root, datasets[0].ann_file)
    return cfg
