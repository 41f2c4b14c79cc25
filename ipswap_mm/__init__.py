"""ipswap_mm: intra-class patch swap (IPS) self-distillation for MMSegmentation and MMDetection.

``import ipswap_mm`` (or ``custom_imports = dict(imports=['ipswap_mm'])`` in a config)
registers the sampler, the batch augmentations, the loss and the hook.
"""
from importlib.util import find_spec

from . import datasets, engine, models  # noqa: F401 - registration
from .version import __version__

if find_spec('mmseg') is not None:
    from .models import seg  # noqa: F401 - registration
if find_spec('mmdet') is not None:
    from .models import det  # noqa: F401 - registration

__all__ = ['__version__']
