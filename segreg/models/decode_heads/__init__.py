"""segreg.models.decode_heads."""
from .nystrom_head import NystromHead  # noqa: F401
