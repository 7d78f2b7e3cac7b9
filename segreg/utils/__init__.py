"""Glue shared by the command-line tools: config and checkpoint checks."""
from .checkpoint import CheckpointMismatchError, check_checkpoint_compatible
from .config import (ConfigError, DataRootError, check_data_roots,
                     find_unknown_keys, merge_cfg_options)

__all__ = [
    'CheckpointMismatchError', 'check_checkpoint_compatible', 'ConfigError',
    'DataRootError', 'check_data_roots', 'find_unknown_keys',
    'merge_cfg_options'
]
