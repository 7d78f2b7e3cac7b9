"""Training glue: mmengine hooks and the SegregRunner."""
from . import hooks  # noqa: F401
from .runner import SegregRunner  # noqa: F401
