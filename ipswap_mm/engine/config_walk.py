"""Walk a config's dataset and evaluator entries: the datasets inside wrapper configs and
the evaluators of a loop, with the dotted keys ``--cfg-options`` reaches them by, and the
data files they name; and the datasets inside built wrappers."""
from __future__ import annotations

import os.path as osp
from typing import List, Sequence, Tuple


def dataset_nodes(dataset) -> list:
    """Every built dataset of ``dataset``, wrappers (``ConcatDataset``'s ``datasets``, the
    ``dataset`` of ``RepeatDataset`` and the like) and the datasets they wrap, wrappers first."""
    found, stack = [], [dataset]
    while stack:
        node = stack.pop()
        found.append(node)
        stack += reversed(list(getattr(node, 'datasets', None) or []))
        if getattr(node, 'dataset', None) is not None:
            stack.append(node.dataset)
    return found


def pipeline_transforms(dataset) -> list:
    """Every transform of ``dataset``'s pipelines, through dataset wrappers and nested transforms."""
    found: list = []
    stack = [node.pipeline for node in dataset_nodes(dataset) if getattr(node, 'pipeline', None) is not None]
    while stack:
        for transform in getattr(stack.pop(), 'transforms', None) or []:
            found.append(transform)
            stack.append(transform)
    return found


def is_leaf_dataset(dataset) -> bool:
    """Whether a built dataset wraps none."""
    return not getattr(dataset, 'datasets', None) and getattr(dataset, 'dataset', None) is None


def leaf_datasets(dataset_cfg) -> list:
    """The dataset configs inside wrapper configs (``ConcatDataset``'s ``datasets``,
    ``RepeatDataset``'s or ``ClassBalancedDataset``'s ``dataset``); a plain dataset config
    is its own leaf."""
    return [leaf for _, leaf in leaf_dataset_keys(dataset_cfg)]


def dataset_config_keys(dataset_cfg, prefix: str = 'dataset') -> list:
    """``(dotted key, config)`` of ``dataset_cfg`` and of every dataset config inside it
    (``ConcatDataset``'s ``datasets``, a wrapper's ``dataset``), wrappers first."""
    if 'datasets' in dataset_cfg:
        children = [(f'{prefix}.datasets.{index}', child) for index, child in enumerate(dataset_cfg['datasets'])]
    elif 'dataset' in dataset_cfg:
        children = [(f'{prefix}.dataset', dataset_cfg['dataset'])]
    else:
        children = []
    return [(prefix, dataset_cfg)] + [node for key, child in children for node in dataset_config_keys(child, key)]


def leaf_dataset_keys(dataset_cfg, prefix: str = 'dataset') -> list:
    """``(dotted key, config)`` of every leaf of :func:`leaf_datasets`, keys from ``prefix``."""
    return [(key, node) for key, node in dataset_config_keys(dataset_cfg, prefix)
            if 'datasets' not in node and 'dataset' not in node]


def evaluator_keys(cfg, name: str) -> List[Tuple[str, dict]]:
    """``[(key, evaluator config)]`` of ``cfg[name]``, one evaluator or a list of them (the key
    ``val_evaluator`` or ``val_evaluator.<index>``, as ``--cfg-options`` names it); ``[]``
    when the config has none."""
    evaluator_cfg = cfg.get(name)
    if not evaluator_cfg:
        return []
    if isinstance(evaluator_cfg, (list, tuple)):
        return [(f'{name}.{index}', evaluator) for index, evaluator in enumerate(evaluator_cfg)]
    return [(name, evaluator_cfg)]


def loader_evaluator_keys(cfg, loader: str) -> List[Tuple[str, dict]]:
    """:func:`evaluator_keys` of the evaluator that goes with dataloader ``loader``
    (``val_dataloader``: ``val_evaluator``)."""
    return evaluator_keys(cfg, loader.replace('dataloader', 'evaluator'))


def data_root_keys(cfg, loaders: Sequence[str]) -> list:
    """The ``--cfg-options`` keys of every dataset's ``data_root`` in ``loaders`` (names of the
    config's dataloaders), and of their evaluators' ``ann_file`` (COCO metrics read the
    annotations themselves)."""
    keys = [f'{name}.{key}.data_root' for name in loaders if cfg.get(name)
            for key, _ in leaf_dataset_keys(cfg[name].dataset)]
    for name in loaders:
        keys += [f'{key}.ann_file' for key, evaluator in loader_evaluator_keys(cfg, name)
                 if evaluator.get('ann_file')]
    return keys


#: ``data_prefix`` keys of the images a dataset reads in every pipeline; its other keys (label
#: maps, depth maps) are read only by a pipeline that loads annotations.
IMAGE_PREFIX_KEYS = ('img_path', 'img', 'sub_data_root')


def _loads_annotations(dataset_cfg) -> bool:
    """Whether a dataset config's pipeline loads annotations (unknown: assumed so). A test set
    without labels (MMSegmentation's ``format_only`` recipes) inherits ``seg_map_path`` but
    never reads it."""
    pipeline = dataset_cfg.get('pipeline')
    if not isinstance(pipeline, (list, tuple)):
        return True
    return any('LoadAnnotations' in str(step.get('type', '')) for step in pipeline if isinstance(step, dict))


def missing_data_paths(cfg, loaders: Sequence[str]) -> list:
    """The annotation files and data folders the datasets of ``loaders`` read, and their
    evaluators' ``ann_file``, that are not on the local disk. A dataset or evaluator read
    through a storage backend (``backend_args``) or at a URI is not checked, nor a label folder
    of a dataset whose pipeline loads no annotations."""
    paths = []
    for name in loaders:
        if not cfg.get(name):
            continue
        for _, leaf in leaf_dataset_keys(cfg[name].dataset):
            if leaf.get('backend_args'):
                continue
            root = leaf.get('data_root') or ''
            labelled = _loads_annotations(leaf)
            prefixes = [value for key, value in (leaf.get('data_prefix') or {}).items()
                        if key in IMAGE_PREFIX_KEYS or labelled]
            paths += [osp.join(root, item) for item in [leaf.get('ann_file') or '', *prefixes]
                      if item and isinstance(item, str)]
        paths += [evaluator['ann_file'] for _, evaluator in loader_evaluator_keys(cfg, name)
                  if isinstance(evaluator.get('ann_file'), str) and not evaluator.get('backend_args')]
    return sorted({path for path in paths if '://' not in path and not osp.exists(path)})
