"""Decode head with Nystrom global context (an O(HW) NLHead)."""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmseg.models.decode_heads.fcn_head import FCNHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ..layers.nystrom_attention import NystromAttention


@MODELS.register_module()
class NystromHead(FCNHead):
    """FCN head with Nystrom self-attention over all ``H x W`` positions.

    In the spirit of mmseg's ``NLHead`` (non-local block), with the
    quadratic non-local attention replaced by :class:`NystromAttention`,
    whose cost grows linearly with ``H * W``::

        x -> convs[0] -> y
        y -> y + gamma * NystromAttention(norm(y))    (global context)
          -> convs[1] -> [concat x, conv_cat]          (as FCNHead)
          -> [c1 decoder, as DeepLabV3+]              (optional)
          -> cls_seg

    ``gamma`` is a learnable scalar initialised to ``gamma_init`` (0 by
    default, so training starts from the plain FCN head and blends the
    context in; the same trick as DANet's attention modules). The attention
    runs on ``norm(y)`` in token layout (a LayerNorm by default).

    With ``c1_in_channels > 0`` the head adds DeepLabV3+'s decoder: the
    context features are upsampled to the stride of ``inputs[0]``,
    concatenated with a 1x1 projection of it to ``c1_channels`` and fused by
    two 3x3 convs, so the head is a drop-in replacement of
    ``DepthwiseSeparableASPPHead`` with Nystrom context instead of ASPP.

    Any feature-map size works: the tokens need not be a square nor a
    multiple of ``num_landmarks`` (see ``segreg.ops.segment_means``), and
    maps with at most ``num_landmarks`` positions get exact attention.

    Args:
        num_heads: attention heads (``channels`` must be divisible).
        num_landmarks: Nystrom landmarks per head.
        pinv_iters: iterations of the iterative pseudo-inverse.
        conv_kernel_size: kernel of the depthwise skip on the values (0: none).
        attn_norm_cfg: norm before the attention (token layout), or None.
        gamma_init: initial weight of the context branch.
        c1_in_channels: channels of ``inputs[0]`` for the low-level
            decoder; 0 disables it.
        c1_channels: channels of its 1x1 projection.
        **kwargs: FCNHead/BaseDecodeHead arguments (``in_channels``,
            ``channels``, ``num_classes``, ``in_index``, ``concat_input``,
            ``kernel_size``, ``dilation``, ``norm_cfg``, ...). ``num_convs``
            is fixed to 2.
    """

    def __init__(self,
                 num_heads: int = 8,
                 num_landmarks: int = 64,
                 pinv_iters: int = 6,
                 conv_kernel_size: int = 3,
                 attn_norm_cfg: Optional[dict] = dict(type='LN'),
                 gamma_init: float = 0.0,
                 c1_in_channels: int = 0,
                 c1_channels: int = 48,
                 **kwargs) -> None:
        super().__init__(num_convs=2, **kwargs)
        self.attn_norm = build_norm_layer(
            attn_norm_cfg, self.channels)[1] if attn_norm_cfg else None
        self.attn = NystromAttention(
            self.channels,
            num_heads=num_heads,
            num_landmarks=num_landmarks,
            pinv_iters=pinv_iters,
            conv_kernel_size=conv_kernel_size)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))
        if c1_in_channels > 0:
            self.c1_bottleneck = ConvModule(
                c1_in_channels,
                c1_channels,
                1,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg)
            self.c1_fuse = nn.Sequential(
                ConvModule(
                    self.channels + c1_channels,
                    self.channels,
                    3,
                    padding=1,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg),
                ConvModule(
                    self.channels,
                    self.channels,
                    3,
                    padding=1,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg))
        else:
            self.c1_bottleneck = None

    def context(self, y: Tensor) -> Tensor:
        """``y + gamma * attention(norm(y))`` over the ``H x W`` tokens."""
        b, c, h, w = y.shape
        tokens = y.flatten(2).transpose(1, 2)  # (B, HW, C)
        if self.attn_norm is not None:
            tokens = self.attn_norm(tokens)
        ctx = self.attn(tokens, hw=(h, w)).transpose(1, 2).reshape(b, c, h, w)
        return y + self.gamma * ctx

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        x = self._transform_inputs(inputs)
        feats = self.convs[1](self.context(self.convs[0](x)))
        if self.concat_input:
            feats = self.conv_cat(torch.cat([x, feats], dim=1))
        if self.c1_bottleneck is not None:
            c1 = self.c1_bottleneck(inputs[0])
            feats = resize(
                feats,
                size=c1.shape[2:],
                mode='bilinear',
                align_corners=self.align_corners)
            feats = self.c1_fuse(torch.cat([feats, c1], dim=1))
        return feats

    def forward(self, inputs: List[Tensor]) -> Tensor:
        return self.cls_seg(self._forward_feature(inputs))
