"""Stock MMDetection tools on the project's detection configs, on generated COCO / VOC data, on the CPU."""
import os.path as osp

import mmdet
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ipswap_mm.synthetic import write_voc_detection_dataset
from tests.conftest import DET_NUM_TRAIN, DET_SIZE
from tests.integration.helpers import logged_scalars, run_python, small_det_config

STOCK_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
CONFIGS = {  # name: (ips config, baseline config, generated data)
    'faster_rcnn': ('ipswap_faster-rcnn_r50_fpn_voc0712.py', 'baseline_faster-rcnn_r50_fpn_voc0712.py', 'voc'),
    'retinanet': ('ipswap_retinanet_r50_fpn_1x_coco.py', 'baseline_retinanet_r50_fpn_1x_coco.py', 'coco'),
    'mask_rcnn': ('ipswap_mask-rcnn_r50_fpn_1x_coco.py', 'baseline_mask-rcnn_r50_fpn_1x_coco.py', 'coco'),
}


@pytest.fixture(scope='session')
def voc_det_root(tmp_path_factory) -> str:
    """A small generated dataset in the VOCdevkit 2007 + 2012 detection layout."""
    return write_voc_detection_dataset(str(tmp_path_factory.mktemp('vocdevkit')), num_train=DET_NUM_TRAIN,
                                       num_test=2, size=DET_SIZE)


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def trained(request, coco_root, voc_det_root, tmp_path_factory):
    ips_config, baseline_config, data = CONFIGS[request.param]
    data_root = coco_root if data == 'coco' else voc_det_root
    tmp = tmp_path_factory.mktemp(f'{request.param}_run')
    work_dir = str(tmp / 'ips')
    config = small_det_config(ips_config, data_root, work_dir, str(tmp / 'ips_cfg.py'))
    output = run_python([osp.join(STOCK_TOOLS, 'train.py'), config, '--work-dir', work_dir], cwd=str(tmp))
    baseline = small_det_config(baseline_config, data_root, str(tmp / 'base'), str(tmp / 'base_cfg.py'))
    return dict(name=request.param, tmp=tmp, work_dir=work_dir, output=output, baseline=baseline,
                checkpoint=osp.join(work_dir, 'epoch_1.pth'))


def test_stock_train_logs_the_pair_loss(trained):
    assert osp.exists(trained['checkpoint'])
    logged = [row for row in logged_scalars(trained['work_dir']) if 'loss' in row]
    assert logged and all('loss_ips_kl' in row for row in logged)
    assert all(torch.isfinite(torch.tensor([row['loss_ips_kl'], row['loss']])).all() for row in logged)
    assert any(row['loss_ips_kl'] > 0 for row in logged)  # some pair shared a class and was distilled
    # the run ended with the stock evaluator on the generated val / test annotations
    assert 'Epoch(val) [1][2/2]' in trained['output']


def test_checkpoint_loads_into_the_baseline_config(trained):
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(Config.fromfile(trained['baseline']).model)
    state = torch.load(trained['checkpoint'], map_location='cpu', weights_only=True)['state_dict']
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_readme_block_keeps_a_stock_configs_own_hooks_and_batch_augments(tmp_path):
    """The README's `_base_` form of the block, on YOLOX, whose config has both lists."""
    readme = open(osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))), 'README.md')).read()
    block = readme.split('so keep theirs')[1].split('```python\n')[1].split('```')[0]
    config = tmp_path / 'ips_yolox.py'
    config.write_text("_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'\n" + block)
    cfg = Config.fromfile(str(config))
    assert [a['type'] for a in cfg.model.data_preprocessor.batch_augments] == ['BatchSyncRandomResize',
                                                                               'DetPatchSwap']
    assert [h['type'] for h in cfg.custom_hooks] == ['YOLOXModeSwitchHook', 'SyncNormHook', 'EMAHook',
                                                     'IPSDistillHook']
