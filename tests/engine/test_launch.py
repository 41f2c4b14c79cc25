import os.path as osp

import pytest
from mmengine.config import Config

from ipswap_mm.engine.launch import apply_resume, check_data, training_loaders


def config(work_dir, **fields):
    return Config(dict(work_dir=str(work_dir), resume=False, **fields))


def test_resume_auto_continues_from_the_latest_checkpoint(tmp_path):
    (tmp_path / 'iter_8.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    cfg = config(tmp_path, load_from='pretrained.pth')
    apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None  # MMEngine finds iter_8.pth


def test_resume_auto_without_a_checkpoint_keeps_load_from(tmp_path):
    """A preemptible job's first launch: nothing to resume, the pretrained weights still load."""
    cfg = config(tmp_path, load_from='pretrained.pth')
    apply_resume(cfg, 'auto')
    assert cfg.resume is False and cfg.load_from == 'pretrained.pth'


def test_resume_from_a_named_checkpoint(tmp_path):
    cfg = config(tmp_path, load_from='pretrained.pth')
    apply_resume(cfg, osp.join('run', 'iter_4.pth'))
    assert cfg.resume is True and cfg.load_from == osp.join('run', 'iter_4.pth')
    unchanged = config(tmp_path, load_from='pretrained.pth')
    apply_resume(unchanged, None)
    assert unchanged.resume is False and unchanged.load_from == 'pretrained.pth'


def cpu_pytorch_launch(monkeypatch):
    from ipswap_mm.engine import launch
    monkeypatch.setattr(launch.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(launch.torch_dist, 'is_initialized', lambda: True)  # no process group to start here


@pytest.mark.parametrize('env_cfg', [None, dict(cudnn_benchmark=False), dict(dist_cfg=dict(backend='nccl'))])
def test_a_cpu_pytorch_launch_uses_gloo_bn_and_no_device_ids(monkeypatch, env_cfg):
    """Every SyncBN (MMCV's too) becomes BN, DDP wraps without device ids, the dist backend is
    gloo whatever env_cfg held (ConfigDict.setdefault wrote to a copy where it held no dist_cfg)."""
    from ipswap_mm.engine.launch import prepare_distributed
    cpu_pytorch_launch(monkeypatch)
    fields = dict(launcher='pytorch', model=dict(
        backbone=dict(norm_cfg=dict(type='SyncBN')),
        heads=[dict(norm_cfg=dict(type='MMSyncBN')), dict(norm_cfg=dict(type='GN'))]))
    cfg = Config(fields if env_cfg is None else dict(fields, env_cfg=env_cfg))
    prepare_distributed(cfg)
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert [head.norm_cfg.type for head in cfg.model.heads] == ['BN', 'GN']
    assert cfg.model_wrapper_cfg['device_ids'] is None
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    if env_cfg and 'cudnn_benchmark' in env_cfg:
        assert cfg.env_cfg.cudnn_benchmark is False


def test_a_configs_own_work_dir_is_kept(tmp_path):
    from ipswap_mm.engine.launch import load_run_config
    path = tmp_path / 'my_config.py'
    path.write_text("work_dir = '/somewhere/else'\n")
    assert load_run_config(str(path), None, None, 'none').work_dir == '/somewhere/else'
    path.write_text('x = 1\n')
    assert load_run_config(str(path), None, None, 'none').work_dir == './work_dirs/my_config'
    assert load_run_config(str(path), None, '/given', 'none').work_dir == '/given'


def voc_like(root, val_cfg=True, **train_fields):
    """A config whose training set joins two lists (as the VOC aug configs do) and whose
    validation set and COCO-style evaluator name their own files."""
    def dataset(ann_file):
        return dict(type='BaseSegDataset', data_root=str(root), ann_file=ann_file,
                    data_prefix=dict(img_path='JPEGImages', seg_map_path='labels'), **train_fields)
    cfg = dict(train_dataloader=dict(dataset=dict(type='ConcatDataset',
                                                  datasets=[dataset('train.txt'), dataset('aug.txt')])),
               val_dataloader=dict(dataset=dataset('val.txt')),
               val_evaluator=dict(type='CocoMetric', ann_file=osp.join(str(root), 'val.json')))
    if val_cfg:
        cfg['val_cfg'] = dict(type='ValLoop')
    return Config(cfg)


def with_loaders(cfg):
    return cfg, training_loaders(cfg)


def test_missing_training_data_stops_the_run_naming_the_files_and_the_keys(tmp_path):
    (tmp_path / 'JPEGImages').mkdir()
    (tmp_path / 'train.txt').write_text('a\n')
    with pytest.raises(SystemExit) as stopped:
        check_data(*with_loaders(voc_like(tmp_path)))
    message = str(stopped.value)
    for missing in ('aug.txt', 'val.txt', 'labels', 'val.json'):
        assert str(tmp_path / missing) in message
    assert str(tmp_path / 'train.txt') not in message and str(tmp_path / 'JPEGImages,') not in message
    assert ('--cfg-options train_dataloader.dataset.datasets.0.data_root=DIR '
            'train_dataloader.dataset.datasets.1.data_root=DIR val_dataloader.dataset.data_root=DIR '
            'val_evaluator.ann_file=FILE') in message


def test_data_that_is_there_behind_a_backend_or_not_validated_passes(tmp_path):
    for name in ('JPEGImages', 'labels'):
        (tmp_path / name).mkdir()
    for name in ('train.txt', 'aug.txt'):
        (tmp_path / name).write_text('a\n')
    check_data(*with_loaders(voc_like(tmp_path, val_cfg=False)))  # no validation loop: its data is not needed
    with pytest.raises(SystemExit, match='val.txt'):
        check_data(*with_loaders(voc_like(tmp_path)))
    remote = voc_like(tmp_path / 'elsewhere', val_cfg=False, backend_args=dict(backend='petrel'))
    check_data(*with_loaders(remote))  # read through a storage backend: not on the local disk
    check_data(*with_loaders(voc_like('s3://bucket/voc', val_cfg=False)))  # a URI
    check_data(voc_like(tmp_path / 'elsewhere'), [])  # a tool that reads no dataloader
    with pytest.raises(SystemExit, match=r'val\.txt.*--cfg-options val_dataloader\.dataset\.data_root=DIR '
                                         r'val_evaluator\.ann_file=FILE$'):
        check_data(voc_like(tmp_path), ['val_dataloader'])  # tools/test.py names its test_dataloader alike


def test_a_config_file_that_is_not_there_is_named(tmp_path):
    from ipswap_mm.engine.launch import load_run_config
    with pytest.raises(SystemExit, match='config file not found: nowhere/ips.py'):
        load_run_config('nowhere/ips.py', None, None, 'none')


def test_a_label_folder_a_pipeline_never_reads_and_an_evaluator_behind_a_backend_are_not_checked(tmp_path):
    """MMSegmentation's test-set recipe (format_only) inherits seg_map_path but loads no
    annotations; a petrel-style evaluator reads its ann_file through its backend."""
    (tmp_path / 'testing').mkdir()
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='ADE20KDataset', data_root=str(tmp_path), data_prefix=dict(img_path='testing',
                                                                         seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')])),
        test_evaluator=dict(type='CocoMetric', ann_file='data/coco/val.json', backend_args=dict(backend='petrel'))))
    check_data(cfg, ['test_dataloader'])
    cfg.test_dataloader.dataset.pipeline.insert(1, dict(type='LoadAnnotations'))
    with pytest.raises(SystemExit, match='annotations/validation'):  # labelled: its label folder is read
        check_data(cfg, ['test_dataloader'])
