"""Registered models: losses, decode heads and attention layers."""
from . import decode_heads, layers, losses  # noqa: F401
