"""Walk a config's dataset and evaluator entries: the datasets inside wrapper configs and
the evaluators of a loop, with the dotted keys ``--cfg-options`` reaches them by; and the
datasets inside built wrappers."""
from __future__ import annotations

from typing import List, Tuple


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
