"""Multi-head Nystrom self-attention (registered in mmseg's MODELS)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from segreg.ops.nystrom import nystrom_attention


@MODELS.register_module()
class NystromAttention(nn.Module):
    """Multi-head self-attention with the Nystrom approximation.

    ``x -> q, k, v`` (one linear layer), per head
    :func:`segreg.ops.nystrom_attention` with ``num_landmarks`` landmarks and
    ``pinv_iters`` pseudo-inverse iterations, plus a depthwise convolution of
    ``v`` as a skip (Nystromformer's residual convolution), then the output
    projection. With ``num_landmarks >= n`` it is exact multi-head softmax
    attention (plus the skip).

    The convolution skip is one depthwise ``Conv2d`` of kernel
    ``conv_kernel_size x conv_kernel_size`` over the ``heads * head_dims``
    value channels. Given ``hw=(H, W)`` it runs over the 2-D token map;
    without ``hw`` the tokens are a ``n x 1`` map, so only the kernel's
    middle column acts and the skip is a 1-D convolution along the sequence,
    as in the paper (whose kernel is shared by the channels of a head; here
    each channel has its own). ``conv_kernel_size=0`` removes the skip.

    Args:
        embed_dims: channels ``C`` of the tokens.
        num_heads: attention heads.
        head_dims: channels per head; ``None`` means ``embed_dims //
            num_heads``.
        num_landmarks: landmarks per head (``m``).
        pinv_iters: iterations of the iterative pseudo-inverse.
        conv_kernel_size: odd kernel size of the depthwise skip, or 0.
        qkv_bias: bias in the q, k, v projection.
        attn_drop: dropout on the attention output (before projection).
        proj_drop: dropout after the output projection.

    Shape:
        x: ``(B, n, C)``; ``hw``: ``(H, W)`` with ``H * W = n`` or ``None``.
        Returns ``(B, n, C)``.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 8,
                 head_dims: Optional[int] = None,
                 num_landmarks: int = 64,
                 pinv_iters: int = 6,
                 conv_kernel_size: int = 3,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if head_dims is None:
            if embed_dims % num_heads:
                raise ValueError(f'embed_dims {embed_dims} is not divisible '
                                 f'by num_heads {num_heads}')
            head_dims = embed_dims // num_heads
        if conv_kernel_size < 0 or (conv_kernel_size
                                    and conv_kernel_size % 2 == 0):
            raise ValueError('conv_kernel_size must be 0 or odd, got '
                             f'{conv_kernel_size}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = head_dims
        self.num_landmarks = num_landmarks
        self.pinv_iters = pinv_iters
        self.conv_kernel_size = conv_kernel_size
        inner = num_heads * head_dims
        self.qkv = nn.Linear(embed_dims, 3 * inner, bias=qkv_bias)
        self.conv = nn.Conv2d(
            inner,
            inner,
            conv_kernel_size,
            padding=conv_kernel_size // 2,
            groups=inner,
            bias=False) if conv_kernel_size else None
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(inner, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self,
                x: Tensor,
                hw: Optional[Tuple[int, int]] = None) -> Tensor:
        b, n, _ = x.shape
        h_map, w_map = (n, 1) if hw is None else hw
        if h_map * w_map != n:
            raise ValueError(f'hw={hw} does not match {n} tokens')
        q, k, v = (self.qkv(x).unflatten(-1, (3, self.num_heads, -1))
                   .permute(2, 0, 3, 1, 4))  # each (B, heads, n, head_dims)
        out = nystrom_attention(q, k, v, self.num_landmarks, self.pinv_iters)
        out = out.transpose(1, 2).flatten(2)  # (B, n, inner)
        if self.conv is not None:
            v_map = v.permute(0, 1, 3, 2).reshape(b, -1, h_map, w_map)
            out = out + self.conv(v_map).flatten(2).transpose(1, 2)
        return self.proj_drop(self.proj(self.attn_drop(out)))

    def extra_repr(self) -> str:
        return (f'heads={self.num_heads}, head_dims={self.head_dims}, '
                f'num_landmarks={self.num_landmarks}, '
                f'pinv_iters={self.pinv_iters}, '
                f'conv_kernel_size={self.conv_kernel_size}')
