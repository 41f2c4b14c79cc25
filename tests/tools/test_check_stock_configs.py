"""tools/check_stock_configs.py: the README's MMDetection block on stock configs, one step each."""
import json

import pytest
from mmengine.hub import get_config

from tools.check_stock_configs import DET_CONFIGS, failures_of_ours, ips_config, main, train_one_step


@pytest.mark.parametrize('config', [
    'htc/htc_r50_fpn_1x_coco.py',  # a semantic branch fused into the box features
    'sabl/sabl-faster-rcnn_r50_fpn_1x_coco.py',  # nested box deltas
    'sabl/sabl-retinanet_r50_fpn_1x_coco.py',  # square anchors, no prior_generator
    'tridentnet/tridentnet_r50-caffe_1x_coco.py',  # the batch replicated per branch
    'tood/tood_r50_fpn_1x_coco.py',  # reads the epoch from the message hub
    'yolox/yolox_s_8xb8-300e_coco.py',  # its own batch augment and hooks
    'ssd/ssd300_coco.py',  # a different number of priors per level, softmax over C + 1
    'detr/detr_r50_8xb2-150e_coco.py',  # queries matched to the boxes, softmax over C + 1
    'dino/dino-4scale_r50_8xb2-12e_coco.py',  # matching and denoising queries, encoder proposals, sigmoids
    'sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py',  # query box heads in a six-stage RoI head, sigmoids
])
def test_block_trains_on_stock_config(config):
    """A finite loss and ``loss_ips_kl`` and unchanged ``state_dict`` keys."""
    row = train_one_step(config, 'det', dict(DET_CONFIGS)[config])
    assert row['status'] == 'trains', row
    assert row['loss_ips_kl'] > 0


def test_block_merge_keeps_the_base_lists():
    cfg = ips_config(get_config('mmdet::yolox/yolox_s_8xb8-300e_coco.py'), 'det')
    augments = cfg.model.data_preprocessor.batch_augments
    assert [a['type'] for a in augments] == ['BatchSyncRandomResize', 'DetPatchSwap']
    assert augments[-1]['swap_prob'] == 1.0
    assert [h['type'] for h in cfg.custom_hooks][-1] == 'IPSDistillHook'
    assert {'YOLOXModeSwitchHook', 'EMAHook'} <= {h['type'] for h in cfg.custom_hooks}
    assert cfg.train_dataloader.sampler.type == 'IntraClassPairSampler'


def test_block_replaces_a_base_sampler_with_arguments_of_its_own():
    """OpenImages' class-aware sampling: its num_sample_class would reach IntraClassPairSampler
    (a TypeError when the dataloader is built) but for the block's _delete_."""
    cfg = ips_config(get_config('mmdet::openimages/faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py'), 'det')
    assert cfg.train_dataloader.sampler == dict(type='IntraClassPairSampler', shuffle=True)


def test_rows_and_files(tmp_path):
    out = tmp_path / 'new_folder' / 'rows.json'
    rows = main(['--task', 'det', '--baseline', '--out', str(out), '--configs',
                 'retinanet/retinanet_r50_fpn_1x_coco.py', 'centernet/centernet_r18_8xb16-crop512-140e_coco.py',
                 'no_such/config.py'])
    assert [(r['config'].split('/')[0], r['status'], r['ips']) for r in rows] == [
        ('retinanet', 'trains', True), ('centernet', 'rejected', True), ('centernet', 'trains', False),
        ('no_such', 'fails', True), ('no_such', 'fails', False)]
    assert 'CenterNetHead' in rows[1]['message']
    assert 'no_such/config.py' in rows[3]['message']
    assert json.loads(out.read_text())['rows'] == rows
    assert 'CenterNetHead' in (tmp_path / 'new_folder' / 'rows.md').read_text()
    assert failures_of_ours(rows) == []  # no_such fails without the block too: not ours
    assert failures_of_ours(rows[:1] + [dict(rows[3], config='x.py'), dict(rows[4], config='x.py', status='trains')]
                            ) == ['x.py']
    with pytest.raises(SystemExit):  # a Markdown name would be overwritten by the table
        main(['--task', 'det', '--out', str(tmp_path / 'rows.md'), '--configs', 'no_such/config.py'])


def test_the_batch_holds_what_the_training_pipeline_loads():
    """Masks and a semantic map only where the config's pipeline loads them (a box-only
    detector never sees masks in training; RTMDet's assigner would read them as tensors)."""
    from mmengine.hub import get_config

    from tools.check_stock_configs import det_batch, pipeline_annotations
    loads = {config: pipeline_annotations(get_config(f'mmdet::{config}'))
             for config in ('rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
                            'htc/htc_r50_fpn_1x_coco.py', 'panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py')}
    assert list(loads.values()) == [(False, False), (True, False), (True, True), (True, True)]
    boxes_only = det_batch(64, 3, with_mask=False, with_seg=False)['data_samples'][0]
    assert 'masks' not in boxes_only.gt_instances and 'gt_sem_seg' not in boxes_only
    full = det_batch(64, 3)['data_samples'][0]
    assert len(full.gt_instances.masks) == len(full.gt_instances) and 'gt_sem_seg' in full

