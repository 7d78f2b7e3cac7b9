"""Soft Dice with the ignore pixels masked, an anchor.

mmseg's ``DiceLoss`` one-hot encodes the label after clamping and so counts
ignored pixels; this loss leaves them out of every count. Batch-level, over
the classes present in the batch; math in :func:`segreg.ops.soft_jaccard.
soft_dice_loss`.
"""
from __future__ import annotations

from mmseg.registry import MODELS

from segreg.ops.soft_jaccard import soft_dice_loss

from .jaccard_metric_loss import _SoftSetLoss


@MODELS.register_module()
class MaskedDiceLoss(_SoftSetLoss):
    """Soft Dice loss, batch-level, present classes, ignore masked.

    ``1 - mean_{c present} (2 tp_c + smooth) / (|p|_c + |y|_c + smooth)``
    with ``tp = (|p| + |y| - |p - y|) / 2`` (``sum p y`` for hard labels).

    Args:
        loss_weight (float): Multiplier of the loss. Default 1.0.
        smooth (float): Added to numerator and denominator. Default 1e-3.
        threshold (float): A class is present where its label exceeds it on
            some kept pixel. Default 0.01.
        sample_stride (int): Use every ``s``-th pixel in both dims at a
            random phase, 1 = all.
        loss_name (str): Default ``'loss_masked_dice'``.

    Reference:
        F. Milletari, N. Navab, S.-A. Ahmadi. V-Net. 3DV 2016; Z. Wang,
        M. B. Blaschko. Dice Semimetric Losses, arXiv:2303.16296.
    """
    _op = staticmethod(soft_dice_loss)
    _default_name = 'loss_masked_dice'
