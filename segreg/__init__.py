"""segreg: semantic segmentation with metric regularizers on MMSegmentation.

Importing this package registers every segreg module (losses, heads, hooks,
datasets, transforms, metrics) into MMSegmentation's registries, so a config
only needs::

    custom_imports = dict(imports=['segreg'], allow_failed_imports=False)
"""
from . import ops  # noqa: F401  (pure tensor math, registers nothing)
from . import datasets, engine, evaluation, models  # noqa: F401

__version__ = '0.1.0'
__all__ = ['ops', 'models', 'engine', 'datasets', 'evaluation', '__version__']
