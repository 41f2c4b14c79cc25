from types import SimpleNamespace

from mmengine.config import Config

from ipswap_mm.engine.config_walk import (
    dataset_config_keys,
    dataset_nodes,
    evaluator_keys,
    is_leaf_dataset,
    leaf_dataset_keys,
)


def test_built_wrappers_are_walked_to_every_dataset_they_wrap():
    """MMDetection's VOC0712 shape: RepeatDataset(ConcatDataset([VOC2007, VOC2012]))."""
    voc07, voc12 = SimpleNamespace(name='07'), SimpleNamespace(name='12')
    concat = SimpleNamespace(datasets=[voc07, voc12])
    repeat = SimpleNamespace(dataset=concat, times=3)
    assert dataset_nodes(repeat) == [repeat, concat, voc07, voc12]
    assert [node.name for node in filter(is_leaf_dataset, dataset_nodes(repeat))] == ['07', '12']


def test_config_keys_reach_every_leaf_and_evaluator():
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='RepeatDataset', times=3, dataset=dict(
        type='ConcatDataset', datasets=[dict(type='VOCDataset'), dict(type='VOCDataset')]))),
        val_evaluator=[dict(type='VOCMetric'), dict(type='CocoMetric')]))
    assert [key for key, _ in leaf_dataset_keys(cfg.train_dataloader.dataset)] == [
        'dataset.dataset.datasets.0', 'dataset.dataset.datasets.1']
    assert [key for key, _ in evaluator_keys(cfg, 'val_evaluator')] == ['val_evaluator.0', 'val_evaluator.1']
    assert evaluator_keys(cfg, 'test_evaluator') == []


def test_dataset_config_keys_list_wrappers_before_what_they_wrap():
    cfg = dict(type='RepeatDataset', times=3, dataset=dict(type='ConcatDataset', datasets=[
        dict(type='A'), dict(type='ClassBalancedDataset', dataset=dict(type='B'))]))
    assert [(key, node['type']) for key, node in dataset_config_keys(cfg)] == [
        ('dataset', 'RepeatDataset'), ('dataset.dataset', 'ConcatDataset'), ('dataset.dataset.datasets.0', 'A'),
        ('dataset.dataset.datasets.1', 'ClassBalancedDataset'), ('dataset.dataset.datasets.1.dataset', 'B')]
    assert [key for key, _ in leaf_dataset_keys(cfg)] == ['dataset.dataset.datasets.0',
                                                          'dataset.dataset.datasets.1.dataset']
