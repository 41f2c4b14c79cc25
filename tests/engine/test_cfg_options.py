from mmengine.config import Config

from ipswap_mm.engine.cfg_options import MISSING, accepted_option, ips_block_options, lookup


def configs():
    baseline = Config(dict(model=dict(data_preprocessor=dict(type='SegDataPreProcessor')),
                           train_dataloader=dict(sampler=dict(type='DefaultSampler', shuffle=True)),
                           train_cfg=dict(max_iters=100), custom_hooks=[]))
    ips = Config(dict(model=dict(data_preprocessor=dict(type='BatchAugSegDataPreProcessor',
                                                        batch_augments=[dict(type='SegPatchSwap', patch_size=32)])),
                      train_dataloader=dict(sampler=dict(type='IntraClassPairSampler', shuffle=True)),
                      train_cfg=dict(max_iters=100),
                      custom_hooks=[dict(type='IPSDistillHook', loss=dict(type='PairKLDivLoss', temperature=1.0))]))
    return baseline, ips


def test_lookup_follows_dotted_keys_through_dicts_and_list_indices():
    _, ips = configs()
    assert lookup(ips, 'model.data_preprocessor.batch_augments.0.patch_size') == 32
    assert lookup(ips, 'custom_hooks.0.loss.temperature') == 1.0
    for absent in ('model.backbone', 'custom_hooks.1.loss', 'custom_hooks.x', 'train_cfg.max_iters.0'):
        assert lookup(ips, absent) is MISSING


def test_only_keys_of_the_ips_block_stay_off_the_baseline():
    """The baseline has no batch_augments or IPS hook: merged into it, these keys would create
    a dict the preprocessor calls and a custom_hooks dict the runner rejects."""
    baseline, ips = configs()
    options = {'model.data_preprocessor.batch_augments.0.patch_size': 16,
               'custom_hooks.0.loss.temperature': 2.0,
               'train_cfg.max_iters': 10,  # both have it: both runs get it
               'model.backbone.depth': 18}  # neither has it: not an IPS key either
    assert ips_block_options(options, baseline, ips) == {
        'model.data_preprocessor.batch_augments.0.patch_size': 16, 'custom_hooks.0.loss.temperature': 2.0}


def test_options_of_the_ips_objects_stay_off_the_baseline_when_the_ips_config_leaves_them_out():
    """compile, check_finite and pair_key are options of the IPS block's objects at their
    defaults: merged into the baseline they made a custom_hooks dict the runner rejects, a
    batch_augments dict the preprocessor calls, and a DefaultSampler argument it does not take."""
    baseline, ips = configs()
    options = {'custom_hooks.0.loss.compile': True,
               'custom_hooks.0.warmup_iters': 10,
               'model.data_preprocessor.batch_augments.0.check_finite': False,
               'train_dataloader.sampler.pair_key': 'dominant',
               'train_dataloader.sampler.shuffle': False,  # both samplers have it: both runs
               'model.data_preprocessor.size_divisor': 32,  # the stock preprocessor's option: both runs
               'train_dataloader.sampler.seed': 3}  # DefaultSampler takes a seed too: both runs
    assert set(ips_block_options(options, baseline, ips)) == {
        'custom_hooks.0.loss.compile', 'custom_hooks.0.warmup_iters',
        'model.data_preprocessor.batch_augments.0.check_finite', 'train_dataloader.sampler.pair_key'}


def test_only_a_direct_option_of_the_baselines_own_object_goes_to_both_runs():
    baseline, ips = configs()
    assert ips_block_options({'train_dataloader.sampler.extra.seed': 3}, baseline, ips) == {
        'train_dataloader.sampler.extra.seed': 3}


def test_an_option_is_accepted_where_the_config_has_it_or_its_object_takes_it():
    """Also the swaps, registered in MMSegmentation's and MMDetection's child registries, and
    their options taken through **kwargs by the base class (check_finite)."""
    import ipswap_mm  # noqa: F401
    for name in ('ipswap_deeplabv3_voc.py', 'ipswap_retinanet_r50_fpn_1x_coco.py'):
        cfg = Config.fromfile(f'configs/{name}').to_dict()
        for key in ('custom_hooks.0.loss.temperature', 'custom_hooks.0.loss.compile', 'train_dataloader.sampler.seed',
                    'model.data_preprocessor.batch_augments.0.check_finite'):
            assert accepted_option(cfg, key), (name, key)
        for key in ('model.data_preprocessor.batch_augments.0.patchsize', 'custom_hooks.0.nonsense', 'nowhere',
                    'custom_hooks.0.kwargs'):  # **kwargs is no option
            assert not accepted_option(cfg, key), (name, key)
    det = Config.fromfile('configs/ipswap_retinanet_r50_fpn_1x_coco.py').to_dict()
    # DetPatchSwap passes no allow_partial_grid on to its base; MMDetection's ResNet (the
    # config's scope, not MMSegmentation's) has no multi_grid
    for key in ('model.data_preprocessor.batch_augments.0.allow_partial_grid', 'model.backbone.multi_grid'):
        assert not accepted_option(det, key), key
    assert accepted_option(det, 'model.backbone.frozen_stages')
