"""The README's MMSegmentation block, pasted into stock configs of other decode-head families."""
import os.path as osp

import pytest
import torch
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ipswap_mm.engine.distill_hook import IPSDistillHook, check_swap_configured
from tests.conftest import REPO
from tests.models.seg.test_seg_patch_swap import seg_batch

STOCK_CONFIGS = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'mmseg::upernet/upernet_r18_4xb2-40k_cityscapes-512x1024.py',
    'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
    'mmseg::ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py',  # a cascade of decode heads
]


def ips_block() -> dict:
    """The block between the markers of configs/ipswap_deeplabv3_voc.py, as a dict."""
    with open(osp.join(REPO, 'configs', 'ipswap_deeplabv3_voc.py')) as file:
        text = file.read()
    block = text.split('# ---------------------------------------------------------------- IPS block')[1]
    block = block.split('# ---------------------------------------------------------------- end of IPS block')[0]
    namespace: dict = {}
    exec(block, namespace)
    return {key: value for key, value in namespace.items() if not key.startswith('__')}


@pytest.mark.parametrize('config', STOCK_CONFIGS)
def test_block_trains_on_stock_config(config):
    cfg = get_config(config)
    cfg.merge_from_dict(ips_block())
    assert cfg.train_dataloader.sampler.type == 'IntraClassPairSampler'
    init_default_scope('mmseg')
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = (64, 64)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    keys = set(model.state_dict())
    check_swap_configured(model)
    hook = IPSDistillHook(**{k: v for k, v in cfg.custom_hooks[0].items() if k != 'type'})
    hook.attach(model)
    head = model.decode_head[-1] if isinstance(model.decode_head, torch.nn.ModuleList) else model.decode_head
    images, samples = seg_batch(4, 64, 64)
    for sample in samples:
        sample.gt_sem_seg.data = sample.gt_sem_seg.data % head.num_classes
        sample.gt_sem_seg.data[:, :, :32] = 1  # a class every pair shares
    model.train()
    log_vars = model.train_step(dict(inputs=list(images * 255), data_samples=samples),
                                OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01)))
    assert 'loss_ips_kl' in log_vars and torch.isfinite(log_vars['loss_ips_kl'])
    assert set(model.state_dict()) == keys
