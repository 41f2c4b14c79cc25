"""Which ``--cfg-options`` a baseline run gets, when a tool runs it next to its IPS twin.

The IPS block's keys (``model.data_preprocessor.batch_augments.0.patch_size``,
``custom_hooks.0.loss.temperature``, ``train_dataloader.sampler.pair_key``, ...) are absent
from a baseline config, or name another object there; merged into one, MMEngine would
create them (``batch_augments`` as a dict that the data preprocessor then calls,
``custom_hooks`` as a dict that the runner rejects) or pass them to an object that does
not take them (``DefaultSampler``). So they go to the IPS run only; every other key goes
to both.
"""
from __future__ import annotations

import inspect

MISSING = object()


def lookup(cfg, key: str):
    """The value at dotted ``key`` of a config (an MMEngine ``Config`` or a dict; list items by
    index), or ``MISSING``."""
    node = cfg if isinstance(cfg, dict) or not hasattr(cfg, 'to_dict') else cfg.to_dict()
    for part in key.split('.'):
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                return MISSING
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return MISSING
    return node


#: The IPS block's own objects: an option of one of them exists in the IPS run only, whether
#: or not the IPS config writes it out (``custom_hooks.0.loss.compile``, left at its default).
IPS_BLOCK_TYPES = ('IntraClassPairSampler', 'IPSDistillHook', 'PairKLDivLoss', 'SegPatchSwap', 'DetPatchSwap')


def ips_block_options(options: dict, baseline_cfg, ips_cfg) -> dict:
    """The items of ``options`` (dotted key: value) that belong to the IPS run only: keys the
    baseline config lacks and that the IPS config has, or that configure one of the IPS
    block's objects (:data:`IPS_BLOCK_TYPES`: the nearest enclosing entry with a ``type``),
    unless the baseline's own object in that place takes the option too (a sampler's ``seed``)."""
    return {key: value for key, value in options.items()
            if lookup(baseline_cfg, key) is MISSING and _in_ips_block(key, baseline_cfg, ips_cfg)}


def accepted_option(cfg, key: str) -> bool:
    """Whether dotted ``key`` is in ``cfg``, or names an argument that the object of its
    enclosing entry (``.../<entry>.<argument>``, the entry with a ``type``) takes, left at its
    default in the config (``custom_hooks.0.loss.compile``)."""
    if lookup(cfg, key) is not MISSING:
        return True
    path, _, argument = key.rpartition('.')
    scope = (cfg.get('default_scope') if isinstance(cfg, dict) else getattr(cfg, 'default_scope', '')) or ''
    return bool(path) and _takes(lookup(cfg, path), argument, scope)


def _in_ips_block(key: str, baseline_cfg, ips_cfg) -> bool:
    if lookup(ips_cfg, key) is not MISSING:
        return True
    parts = key.split('.')
    for end in range(len(parts) - 1, 0, -1):
        path = '.'.join(parts[:end])
        node = lookup(ips_cfg, path)
        if isinstance(node, dict) and 'type' in node:
            if _type_name(node['type']) not in IPS_BLOCK_TYPES:
                return False
            return not (end == len(parts) - 1 and _takes(lookup(baseline_cfg, path), parts[-1]))
    return False


def _type_name(kind) -> str:
    return (kind if isinstance(kind, str) else getattr(kind, '__name__', '')).split('.')[-1]


def _takes(node, argument: str, scope: str = '') -> bool:
    """Whether the object a config entry builds (looked up in MMEngine's sampler, hook and
    model registries, under the config's ``scope`` first) takes ``argument``: a parameter of
    its class, or of a base class it passes ``**kwargs`` on to."""
    if not (isinstance(node, dict) and 'type' in node):
        return False
    from mmengine.registry import DATA_SAMPLERS, HOOKS, MODELS
    kind = node['type']
    # MMSegmentation's and MMDetection's objects (the swaps) sit in their child registries
    scopes = [scope] if scope in ('mmseg', 'mmdet') else []
    names = [kind] if callable(kind) or '.' in kind else (
        [f'{name}.{kind}' for name in scopes] + [kind, f'mmseg.{kind}', f'mmdet.{kind}'])
    builder = kind if callable(kind) else next(
        (found for found in (registry.get(name) for name in names for registry in (DATA_SAMPLERS, HOOKS, MODELS))
         if found), None)
    for target in (getattr(builder, '__mro__', None) or (builder,)) if builder is not None else ():
        try:
            parameters = inspect.signature(target).parameters
        except (TypeError, ValueError):
            return False
        found = parameters.get(argument)
        if found is not None:
            return found.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        if not any(parameter.kind == inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
            return False  # nothing passed on to the base class
    return False
