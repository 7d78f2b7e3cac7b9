"""segreg: semantic segmentation with metric regularizers on MMSegmentation.

Importing this package registers every segreg module (losses, heads, hooks,
datasets, transforms, metrics) into MMSegmentation's registries, so a config
only needs::

    custom_imports = dict(imports=['segreg'], allow_failed_imports=False)

The MMSegmentation stack (mmengine, mmcv, mmseg) is checked here rather than
installed by pip; see :mod:`segreg._stack` for the distributions that work.
"""
from ._stack import check_stack, quiet_stack_import

with quiet_stack_import():
    check_stack()
    from . import ops  # noqa: F401  (pure tensor math, registers nothing)
    from . import datasets, engine, evaluation, models  # noqa: F401

__version__ = '0.1.0'
__all__ = ['ops', 'models', 'engine', 'datasets', 'evaluation', '__version__']
