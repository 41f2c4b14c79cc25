"""Distributed training on the CPU, exact resume, mixed precision: the project's tools on generated data."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from ipswap_mm.synthetic.small_run import shrink_seg_config
from tests.conftest import REPO
from tests.integration.helpers import logged_scalars, run_python

TRAIN = osp.join(REPO, 'tools', 'train.py')


def seg_config(voc_root, work_dir, path, iters, **overrides):
    cfg = shrink_seg_config(Config.fromfile(osp.join(REPO, 'configs', 'ipswap_deeplabv3_voc.py')), voc_root,
                            crop=64, iters=iters, work_dir=work_dir, batch_size=2)
    cfg.model.backbone.depth = 18  # a small twin of the model: this is about the machinery
    cfg.model.backbone.pop('contract_dilation', None)
    cfg.model.decode_head.in_channels, cfg.model.decode_head.channels = 512, 32
    cfg.model.auxiliary_head.in_channels, cfg.model.auxiliary_head.channels = 256, 16
    cfg.default_hooks.logger.interval = 1
    cfg.merge_from_dict(overrides)
    cfg.dump(path)
    return path


def losses_by_iter(work_dir):
    return {row['iter']: {k: v for k, v in row.items() if k.startswith(('loss', 'decode.loss', 'aux.loss'))}
            for row in logged_scalars(work_dir) if 'loss' in row}


def image_classes(voc_root, name):
    labels = np.asarray(Image.open(osp.join(voc_root, 'SegmentationClassAug', f'{name}.png')))
    return set(np.unique(labels).tolist()) - {0, 255}


@pytest.mark.timeout(480)
def test_two_processes_on_cpu_train_whole_pairs(voc_root, tmp_path):
    work_dir = str(tmp_path / 'dist')
    config = seg_config(voc_root, work_dir, str(tmp_path / 'cfg.py'), iters=3,
                        custom_imports=dict(imports=['ipswap_mm', 'tests.integration.pair_recorder'],
                                            allow_failed_imports=False),
                        custom_hooks=[dict(type='IPSDistillHook'), dict(type='PairRecorderHook')])
    run_python(['-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29517', TRAIN,
         config, '--launcher', 'pytorch', '--work-dir', work_dir], cwd=str(tmp_path))
    batches = {}
    for rank in (0, 1):
        with open(osp.join(work_dir, f'pairs_rank{rank}.jsonl')) as file:
            batches[rank] = [json.loads(line) for line in file]
    assert [it for it, _ in batches[0]] == [it for it, _ in batches[1]] == [0, 1, 2]
    seen = {0: set(), 1: set()}
    for rank, rows in batches.items():
        for _, names in rows:
            assert len(names) == 2  # batch_size 2: one whole pair per rank and step
            assert image_classes(voc_root, names[0]) & image_classes(voc_root, names[1])
            seen[rank].add(tuple(names))
    assert not seen[0] & seen[1]  # the ranks train different pairs
    for row in logged_scalars(work_dir):
        if 'loss' in row:
            assert np.isfinite(row['loss']) and np.isfinite(row['loss_ips_kl'])
    checksums = [json.load(open(osp.join(work_dir, f'checksum_rank{rank}.json'))) for rank in (0, 1)]
    assert checksums[0] == checksums[1]  # gradients were synchronised: both ranks hold the same weights


@pytest.mark.timeout(480)
def test_resume_replays_the_uninterrupted_run(voc_root, tmp_path):
    no_dropout = {'model.decode_head.dropout_ratio': 0.0, 'model.auxiliary_head.dropout_ratio': 0.0,
                  'randomness': dict(seed=3, deterministic=True), 'default_hooks.checkpoint.interval': 3}
    straight = seg_config(voc_root, str(tmp_path / 'straight'), str(tmp_path / 'a.py'), iters=6, **no_dropout)
    run_python([TRAIN, straight], cwd=str(tmp_path))
    interrupted = seg_config(voc_root, str(tmp_path / 'resumed'), str(tmp_path / 'b.py'), iters=6,
                             **{**no_dropout, 'train_cfg.max_iters': 3})
    run_python([TRAIN, interrupted], cwd=str(tmp_path))
    checkpoint = torch.load(osp.join(tmp_path, 'resumed', 'iter_3.pth'), map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}
    output = run_python([TRAIN, interrupted, '--resume', '--cfg-options', 'train_cfg.max_iters=6'],
                 cwd=str(tmp_path))
    assert 'resumed epoch: 0, iter: 3' in output
    expected = losses_by_iter(str(tmp_path / 'straight'))
    resumed = losses_by_iter(str(tmp_path / 'resumed'))
    for iteration in (4, 5, 6):
        assert resumed[iteration] == pytest.approx(expected[iteration], rel=1e-6, abs=1e-7), iteration
