"""The Jaccard metric loss (JML) of Wang & Blaschko (2023), an anchor.

Batch-level soft Jaccard over the classes present in the batch, ignore pixels
masked, soft labels allowed; the math is :func:`segreg.ops.soft_jaccard.
jaccard_metric_loss`. Written for segreg (not a copy of JDTLosses) so that the
anchors of docs/experiments.md run at the same settings as segreg's losses,
including the same pixel subsampling (``sample_stride``).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from segreg.ops.soft_jaccard import (jaccard_metric_loss, pixels_from_logits,
                                     strided_pixels)


class _SoftSetLoss(nn.Module):
    """Shared front end: subsample, softmax, mask, then one ops function."""

    _op: Callable[..., Tensor]
    _default_name: str

    def __init__(self,
                 loss_weight: float = 1.0,
                 smooth: float = 1e-3,
                 threshold: float = 0.01,
                 sample_stride: int = 1,
                 loss_name: Optional[str] = None):
        super().__init__()
        if not (isinstance(sample_stride, int) and sample_stride >= 1):
            raise ValueError(f'{type(self).__name__}: sample_stride must be '
                             f'an int >= 1, got {sample_stride!r}')
        if smooth < 0 or threshold < 0:
            raise ValueError(f'{type(self).__name__}: smooth and threshold '
                             f'must be >= 0, got {smooth!r}, {threshold!r}')
        self.loss_weight = float(loss_weight)
        self.smooth = float(smooth)
        self.threshold = float(threshold)
        self.sample_stride = sample_stride
        self._loss_name = loss_name or self._default_name

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """The loss of one batch.

        Args:
            cls_score (Tensor): Logits, (B, C, H, W).
            label (Tensor): (B, H, W) class indices or ``ignore_index``; or
                soft labels (B, C, H, W) (float).
            weight (Tensor, optional): (B, H, W) per-pixel weights; 0 leaves
                a pixel out.
            ignore_index (int): Label of pixels left out. Default 255.

        Returns:
            Tensor: Scalar, ``loss_weight * mean over present classes``.
        """
        if self.sample_stride > 1:
            cls_score, label, weight = strided_pixels(
                cls_score, label, weight, self.sample_stride)
        with torch.autocast(device_type=cls_score.device.type, enabled=False):
            x = cls_score if cls_score.dtype == torch.float64 else \
                cls_score.float()
            prob, target, keep = pixels_from_logits(x, label, weight,
                                                    ignore_index)
            return self.loss_weight * type(self)._op(
                prob, target, keep, smooth=self.smooth,
                threshold=self.threshold)

    @property
    def loss_name(self) -> str:
        """Name of the loss item (mmseg sums items whose name has 'loss')."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'smooth={self.smooth}, threshold={self.threshold}, '
                f'sample_stride={self.sample_stride}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class JaccardMetricLoss(_SoftSetLoss):
    """Jaccard metric loss (JML), batch-level, present classes, ignore masked.

    ``1 - mean_{c present} (tp_c + smooth) / (|p|_c + |y|_c - tp_c + smooth)``
    with ``tp = (|p| + |y| - |p - y|) / 2`` summed over the whole batch
    (JDTLosses' ``mIoUD``). Use it next to cross-entropy; Wang & Blaschko
    recommend ``0.25 CE + 0.75 JML``
    (configs/realistic/jml-mix_*.py).

    Args:
        loss_weight (float): Multiplier of the loss. Default 1.0.
        smooth (float): Added to numerator and denominator. Default 1e-3.
        threshold (float): A class is present where its label exceeds it on
            some kept pixel. Default 0.01.
        sample_stride (int): Use every ``s``-th pixel in both dims at a
            random phase (as segreg's DualIoU default does), 1 = all.
        loss_name (str): Default ``'loss_jml'``.

    Reference:
        Z. Wang, M. B. Blaschko. Jaccard Metric Losses: Optimizing the
        Jaccard Index with Soft Labels. NeurIPS 2023, arXiv:2302.05666.
    """
    _op = staticmethod(jaccard_metric_loss)
    _default_name = 'loss_jml'
