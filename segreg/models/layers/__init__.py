"""segreg.models.layers."""
from .nystrom_attention import NystromAttention  # noqa: F401
