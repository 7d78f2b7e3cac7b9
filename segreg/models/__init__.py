"""Registered models: losses, decode heads and attention layers."""
from . import decode_heads, layers, losses  # noqa: F401
from .layers import NystromAttention  # noqa: F401,E402
