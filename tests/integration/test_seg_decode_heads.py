"""The README's MMSegmentation block, pasted into stock configs of other decode-head families."""
import pytest

from tools.check_stock_configs import SEG_CONFIGS, ips_config, train_one_step

STOCK_CONFIGS = [
    'pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'upernet/upernet_r18_4xb2-40k_cityscapes-512x1024.py',
    'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
    'ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py',  # a cascade of decode heads
    'point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',  # a cascade whose last head reads points
    'segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py',  # no conv_seg: the head's class map
    'knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py',  # no conv_seg: the last stage's map
    'maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',  # class scores and mask predictions
]


@pytest.mark.parametrize('config', STOCK_CONFIGS)
def test_block_trains_on_stock_config(config):
    """One training step with the block: finite loss and ``loss_ips_kl``, ``state_dict`` keys unchanged."""
    assert config in dict(SEG_CONFIGS)
    row = train_one_step(config, 'seg', 64)
    assert row['status'] == 'trains', row
    assert row['loss_ips_kl'] is not None and row['loss_ips_kl'] >= 0


def test_block_merge_keeps_the_config_and_adds_the_swap():
    from mmengine.hub import get_config
    cfg = ips_config(get_config('mmseg::' + STOCK_CONFIGS[0]), 'seg')
    assert cfg.train_dataloader.sampler.type == 'IntraClassPairSampler'
    assert cfg.model.data_preprocessor.type == 'BatchAugSegDataPreProcessor'
    assert [a['type'] for a in cfg.model.data_preprocessor.batch_augments] == ['SegPatchSwap']
    assert cfg.model.data_preprocessor.batch_augments[0]['swap_prob'] == 1.0
    assert cfg.model.decode_head.type == 'PSPHead'
    assert [h['type'] for h in cfg.custom_hooks] == ['IPSDistillHook']
