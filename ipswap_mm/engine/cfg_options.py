"""Which ``--cfg-options`` a baseline run gets, when a tool runs it next to its IPS twin.

The IPS block's keys (``model.data_preprocessor.batch_augments.0.patch_size``,
``custom_hooks.0.loss.temperature``, ...) are absent from a baseline config; merged into
one, MMEngine would create them (``batch_augments`` as a dict that the data preprocessor
then calls, ``custom_hooks`` as a dict that the runner rejects). So they go to the IPS
run only; every other key goes to both.
"""
from __future__ import annotations

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


def ips_block_options(options: dict, baseline_cfg, ips_cfg) -> dict:
    """The items of ``options`` (dotted key: value) whose key the IPS config has and the
    baseline config lacks."""
    return {key: value for key, value in options.items()
            if lookup(baseline_cfg, key) is MISSING and lookup(ips_cfg, key) is not MISSING}
