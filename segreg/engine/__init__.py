"""Training glue: mmengine hooks."""
from . import hooks  # noqa: F401
