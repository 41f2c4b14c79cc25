"""Distributed training on the CPU, exact resume, mixed precision: the project's tools on generated data."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from ipswap_mm.synthetic.small_run import shrink_det_config, shrink_seg_config
from tests.conftest import REPO
from tests.integration.helpers import free_port, logged_scalars, run_python, single_process_pairs

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


RECORDER = dict(custom_imports=dict(imports=['ipswap_mm', 'tests.integration.pair_recorder'],
                                    allow_failed_imports=False),
                custom_hooks=[dict(type='IPSDistillHook'), dict(type='PairRecorderHook')],
                randomness=dict(seed=5))


def train_on_two_cpu_processes(config, work_dir, cwd, port, timeout, *train_args) -> str:
    """``torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch``; a hang fails the test."""
    return run_python(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={port}', TRAIN,
                       config, '--launcher', 'pytorch', '--work-dir', work_dir, *train_args], cwd=cwd, timeout=timeout)


def check_two_rank_run(work_dir, expected_pairs, classes):
    """Every rank trained whole same-class pairs, the pairs a single process makes for the same seed,
    dealt out whole (pair j to rank j % 2); every rank's losses are finite and hold the pair loss;
    both ranks end with the same weights. ``expected_pairs``: ``{epoch: [(a, b), ...]}``."""
    records = {}
    for rank in (0, 1):
        with open(osp.join(work_dir, f'pairs_rank{rank}.jsonl')) as file:
            records[rank] = [json.loads(line) for line in file]
    assert [r['iter'] for r in records[0]] == [r['iter'] for r in records[1]] == list(range(len(records[0])))
    for rows in records.values():
        for row in rows:
            assert len(row['names']) == 2  # batch_size 2: one whole pair per rank and step
            first, second = row['names']
            assert first == second or classes[first] & classes[second]
            assert 'loss_ips_kl' in row['losses'] and all(np.isfinite(list(row['losses'].values()))), row
    assert {r['epoch'] for r in records[0] + records[1]} == set(expected_pairs)
    for epoch, pairs in expected_pairs.items():
        shares = {rank: [tuple(r['names']) for r in rows if r['epoch'] == epoch] for rank, rows in records.items()}
        for rank, share in shares.items():
            assert share == pairs[rank::2][:len(share)], (epoch, rank)
        assert not set(shares[0]) & set(shares[1])  # the ranks train different pairs
        if len(shares[0]) + len(shares[1]) >= len(pairs):  # a whole epoch: all ranks together made its pairs
            assert set(shares[0]) | set(shares[1]) == set(pairs), epoch
    logged = [row for row in logged_scalars(work_dir) if 'loss' in row]
    assert logged and all(np.isfinite(row['loss']) and np.isfinite(row['loss_ips_kl']) for row in logged)
    checksums = [json.load(open(osp.join(work_dir, f'checksum_rank{rank}.json'))) for rank in (0, 1)]
    assert checksums[0] == checksums[1]  # gradients were synchronised: both ranks hold the same weights


@pytest.mark.timeout(480)
def test_two_processes_on_cpu_train_whole_pairs(voc_root, tmp_path):
    work_dir = str(tmp_path / 'dist')
    # the train list only (not train + aug): 16 images, 8 pairs, one epoch is 4 iterations per rank;
    # 8 iterations: two epochs, which the (infinite) pair sampler runs back to back
    config = seg_config(voc_root, work_dir, str(tmp_path / 'cfg.py'), iters=8, **RECORDER)
    cfg = Config.fromfile(config)
    cfg.train_dataloader.dataset = cfg.train_dataloader.dataset.datasets[0]
    cfg.dump(config)
    train_on_two_cpu_processes(config, work_dir, str(tmp_path), port=free_port(), timeout=420)
    pairs, classes = single_process_pairs(cfg, 'mmseg', [0, 1], str(tmp_path / 'cache'))
    assert len(pairs[0]) == len(pairs[1]) == 8 and pairs[0] != pairs[1]  # new pairs every epoch
    for name, class_set in classes.items():
        assert class_set == image_classes(voc_root, name)
    check_two_rank_run(work_dir, pairs, classes)


@pytest.mark.timeout(300)
def test_two_processes_on_cpu_train_whole_pairs_detection(coco_root, tmp_path):
    """The same for a detector: RetinaNet (ResNet-18, slim FPN and head) on generated COCO data, 2 epochs;
    with ``--auto-scale-lr``, as MMDetection's ``train.py`` takes it."""
    work_dir = str(tmp_path / 'dist')
    cfg = shrink_det_config(Config.fromfile(osp.join(REPO, 'configs', 'ipswap_retinanet_r50_fpn_1x_coco.py')),
                            coco_root, scale=(128, 96), epochs=2, work_dir=work_dir, batch_size=2)
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels, cfg.model.neck.out_channels = [64, 128, 256, 512], 64
    cfg.model.bbox_head.in_channels = cfg.model.bbox_head.feat_channels = 64
    cfg.model.bbox_head.stacked_convs = 2
    cfg.train_cfg.val_begin = 3  # no evaluation: this is about training
    cfg.merge_from_dict(RECORDER)
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    output = train_on_two_cpu_processes(config, work_dir, str(tmp_path), free_port(), 240, '--auto-scale-lr')
    # MMDetection's flag: the learning rate of the config's 16 images a step, scaled to 2 x 2
    assert 'LR is set based on batch size of 16 and the current batch size is 4' in output
    pairs, classes = single_process_pairs(cfg, 'mmdet', [0, 1], str(tmp_path / 'cache'))
    assert len(pairs[0]) == len(pairs[1]) == 4 and pairs[0] != pairs[1]  # new pairs every epoch
    check_two_rank_run(work_dir, pairs, classes)


@pytest.mark.timeout(480)
def test_resume_replays_the_uninterrupted_run(voc_root, tmp_path):
    """Resumed at iteration 6 of 18; 32 training images (train + aug) in pairs, a batch of 2,
    make 16-iteration epochs, so the resumed part crosses into the next epoch, which the pair
    sampler runs on into (infinite, under the iteration-based loop). ``randomness.seed`` is
    not set: the first run draws one, the resumed process draws another and then takes the
    checkpoint's, and the pairs follow it; the uninterrupted run is given that seed."""
    no_dropout = {'model.decode_head.dropout_ratio': 0.0, 'model.auxiliary_head.dropout_ratio': 0.0,
                  'randomness': dict(seed=None, deterministic=True), 'default_hooks.checkpoint.interval': 3}
    interrupted = seg_config(voc_root, str(tmp_path / 'resumed'), str(tmp_path / 'b.py'), iters=18,
                             **{**no_dropout, 'train_cfg.max_iters': 6})
    run_python([TRAIN, interrupted], cwd=str(tmp_path))
    checkpoint = torch.load(osp.join(tmp_path, 'resumed', 'iter_6.pth'), map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}
    seed = checkpoint['meta']['seed']
    straight = seg_config(voc_root, str(tmp_path / 'straight'), str(tmp_path / 'a.py'), iters=18,
                          **{**no_dropout, 'randomness': dict(seed=seed, deterministic=True)})
    run_python([TRAIN, straight], cwd=str(tmp_path))
    output = run_python([TRAIN, interrupted, '--resume', '--cfg-options', 'train_cfg.max_iters=18'],
                 cwd=str(tmp_path))
    assert 'resumed epoch: 0, iter: 6' in output
    assert 'Reach the end of the dataloader' not in output  # no epoch-end restart, no 2-second pause
    expected = losses_by_iter(str(tmp_path / 'straight'))
    resumed = losses_by_iter(str(tmp_path / 'resumed'))
    for iteration in range(7, 19):
        assert resumed[iteration] == pytest.approx(expected[iteration], rel=1e-6, abs=1e-7), iteration


@pytest.mark.timeout(300)
def test_a_resume_with_another_batch_size_goes_on_with_the_pairs_where_it_stopped(voc_root, tmp_path):
    """6 iterations of one pair (batch 2), resumed with two pairs a step (batch 4): MMEngine
    skips 6 batches of the new size, 12 pairs, of which 6 never trained; the hook makes the
    pair sampler go on at pair 6 of the 16 of epoch 0 instead, and the skip loads nothing."""
    work_dir = str(tmp_path / 'run')
    config = seg_config(voc_root, work_dir, str(tmp_path / 'cfg.py'), iters=6,
                        **{**RECORDER, 'default_hooks.checkpoint.interval': 6})
    run_python([TRAIN, config], cwd=str(tmp_path))
    output = run_python([TRAIN, config, '--resume', '--cfg-options', 'train_cfg.max_iters=10',
                         'train_dataloader.batch_size=4'], cwd=str(tmp_path))
    assert 'its pairs go on at pair 6 of epoch 0' in output
    with open(osp.join(work_dir, 'pairs_rank0.jsonl')) as file:
        rows = [json.loads(line) for line in file]
    assert [row['iter'] for row in rows] == list(range(10))
    trained = [tuple(row['names'][i:i + 2]) for row in rows for i in range(0, len(row['names']), 2)]
    pairs, _ = single_process_pairs(Config.fromfile(config), 'mmseg', [0], str(tmp_path / 'cache'))
    assert len(pairs[0]) == 16 and trained == pairs[0][:14]  # 6 pairs, then 4 steps of 2: none skipped, none twice
