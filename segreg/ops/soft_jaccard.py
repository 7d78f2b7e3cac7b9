"""Soft set counts and the metric-loss anchors: Jaccard (JML) and Dice.

The anchors the regularizer is compared against (docs/experiments.md):

* the **Jaccard metric loss** (JML) of Wang & Blaschko (2023), the soft
  Jaccard written with the L1 set difference so that it stays a metric for
  soft labels;
* the **soft Dice** loss (Milletari et al. 2016) in the same L1 form (the
  Dice semimetric loss of Wang & Blaschko 2023), which for hard labels is
  ``1 - 2 sum p y / (sum p + sum y)``.

Both are batch-level ("mIoU^D" of JDTLosses): every count is summed over all
images and pixels of the batch, the ratio is taken per class, and the loss is
the mean over the classes present in the batch's labels. Ignored pixels are
left out of every count (mmseg's ``DiceLoss`` counts them as background).
Pure tensor functions; the registered losses are in
``segreg/models/losses/jaccard_metric_loss.py`` and ``masked_dice_loss.py``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['SoftCounts', 'soft_counts', 'present_classes',
           'jaccard_metric_loss', 'soft_dice_loss', 'strided_pixels',
           'pixels_from_logits']


class SoftCounts(NamedTuple):
    """Per-class soft set sizes of a batch, each of shape (C,)."""
    pred: Tensor  # |p|
    target: Tensor  # |y|
    tp: Tensor  # (|p| + |y| - |p - y|) / 2


def soft_counts(prob: Tensor, target: Tensor,
                weight: Optional[Tensor] = None) -> SoftCounts:
    """Soft cardinalities of prediction, label and their intersection.

    With the L1 norm ``|x| = sum_i |x_i|`` over the pixels of a class::

        |p|_c = sum_i w_i p_ic,   |y|_c = sum_i w_i y_ic,
        tp_c  = (|p|_c + |y|_c - |p - y|_c) / 2

    For labels in {0, 1} ``tp_c = sum_i w_i p_ic y_ic``; for soft labels it
    is the form under which 1 - Jaccard is a metric (Wang & Blaschko 2023).

    Args:
        prob: Class probabilities, shape (N, C), rows on the simplex.
        target: Labels, shape (N, C), one-hot or soft, in [0, 1].
        weight: Optional per-pixel weights, shape (N,); 0 leaves a pixel out.

    Returns:
        SoftCounts of shape (C,) each.

    Shape:
        prob, target: (N, C); weight: (N,).

    Reference:
        Z. Wang, M. B. Blaschko. Jaccard Metric Losses: Optimizing the
        Jaccard Index with Soft Labels. NeurIPS 2023 (arXiv:2302.05666), eq.
        (7)-(9).
    """
    if prob.shape != target.shape or prob.dim() != 2:
        raise ValueError('prob and target must both be (N, C), got '
                         f'{tuple(prob.shape)} and {tuple(target.shape)}')
    diff = (prob - target).abs()
    if weight is not None:
        w = weight.reshape(-1, 1).to(prob.dtype)
        prob, target, diff = prob * w, target * w, diff * w
    p, y, d = prob.sum(0), target.sum(0), diff.sum(0)
    return SoftCounts(p, y, (p + y - d) / 2)


def present_classes(target: Tensor, weight: Optional[Tensor] = None,
                    threshold: float = 0.01) -> Tensor:
    """Classes whose label reaches ``threshold`` on a kept pixel, (C,) bool.

    For hard labels: the classes that occur in the batch (JDTLosses'
    ``active_classes_mode='PRESENT'``).
    """
    if weight is not None:
        target = target[weight.reshape(-1) > 0]
    if target.shape[0] == 0:
        return torch.zeros(target.shape[1], dtype=torch.bool,
                           device=target.device)
    return target.amax(0) > threshold


def _mean_over(loss_c: Tensor, active: Tensor) -> Tensor:
    if not bool(active.any()):  # nothing to measure: a zero that backprops
        return loss_c.sum() * 0.0
    return loss_c[active].mean()


def jaccard_metric_loss(prob: Tensor, target: Tensor,
                        weight: Optional[Tensor] = None,
                        smooth: float = 1e-3,
                        threshold: float = 0.01) -> Tensor:
    """Batch-level Jaccard metric loss over the present classes.

    ::

        J_c = (tp_c + smooth) / (|p|_c + |y|_c - tp_c + smooth)
        L   = mean_{c present} (1 - J_c)

    For one-hot ``prob`` and ``smooth=0`` this is ``1 - mIoU`` of the
    batch's pixels over the classes present in the labels.

    Args:
        prob: Class probabilities, (N, C).
        target: One-hot or soft labels, (N, C).
        weight: Optional per-pixel weights, (N,); 0 leaves a pixel out.
        smooth: Added to numerator and denominator (JDTLosses: 1e-3).
        threshold: A class is present where its label exceeds this.

    Returns:
        Scalar tensor.

    Shape:
        prob, target: (N, C); weight: (N,).

    Reference:
        Wang & Blaschko, NeurIPS 2023 (arXiv:2302.05666), eq. (9)
        (``mIoU^D`` with ``active_classes_mode='PRESENT'`` in JDTLosses).
    """
    n = soft_counts(prob, target, weight)
    j = (n.tp + smooth) / (n.pred + n.target - n.tp + smooth)
    return _mean_over(1.0 - j, present_classes(target, weight, threshold))


def soft_dice_loss(prob: Tensor, target: Tensor,
                   weight: Optional[Tensor] = None,
                   smooth: float = 1e-3,
                   threshold: float = 0.01) -> Tensor:
    """Batch-level soft Dice loss over the present classes, ignore masked.

    ::

        D_c = (2 tp_c + smooth) / (|p|_c + |y|_c + smooth)
        L   = mean_{c present} (1 - D_c)

    with ``tp_c`` of :func:`soft_counts` (``sum p y`` for hard labels).

    Args:
        prob: Class probabilities, (N, C).
        target: One-hot or soft labels, (N, C).
        weight: Optional per-pixel weights, (N,); 0 leaves a pixel out.
        smooth: Added to numerator and denominator.
        threshold: A class is present where its label exceeds this.

    Returns:
        Scalar tensor.

    Shape:
        prob, target: (N, C); weight: (N,).

    Reference:
        F. Milletari, N. Navab, S.-A. Ahmadi. V-Net: Fully Convolutional
        Neural Networks for Volumetric Medical Image Segmentation. 3DV 2016
        (the soft Dice loss); Z. Wang, M. B. Blaschko. Dice Semimetric
        Losses (arXiv:2303.16296), the L1 form used here.
    """
    n = soft_counts(prob, target, weight)
    d = (2 * n.tp + smooth) / (n.pred + n.target + smooth)
    return _mean_over(1.0 - d, present_classes(target, weight, threshold))


def strided_pixels(cls_score: Tensor, label: Tensor,
                   weight: Optional[Tensor], stride: int,
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """Every ``stride``-th pixel in both spatial dims, at a random phase.

    The same subsampling as segreg's DualIoU default (``sample_stride``):
    each pixel is drawn with probability ``1 / s^2`` and carries weight
    ``s^2``, so every class sum is an unbiased estimate of the full one.

    Args:
        cls_score: Logits, (B, C, H, W).
        label: (B, H, W) hard or (B, C, H, W) soft labels.
        weight: Optional per-pixel weights, (B, H, W).
        stride: ``s >= 1``.
        generator: Draws the phase (default: torch's global generator, which
            mmengine seeds).

    Returns:
        ``(cls_score, label, weight)`` on the drawn pixels.

    Shape:
        (B, C, ceil((H - oy) / s), ceil((W - ox) / s)) and the same for the
        label and weight.
    """
    s = stride
    H, W = cls_score.shape[-2:]
    oy = int(torch.randint(min(s, H), (), generator=generator)) if H else 0
    ox = int(torch.randint(min(s, W), (), generator=generator)) if W else 0
    cls_score = cls_score[..., oy::s, ox::s]
    label = label[..., oy::s, ox::s]  # hard (B, H, W) or soft (B, C, H, W)
    if weight is None:
        weight = cls_score.new_full(
            (cls_score.shape[0], *cls_score.shape[2:]), float(s * s))
    else:
        weight = weight[..., oy::s, ox::s] * (s * s)
    return cls_score, label, weight


def pixels_from_logits(cls_score: Tensor, label: Tensor,
                       weight: Optional[Tensor], ignore_index: int
                       ) -> Tuple[Tensor, Tensor, Tensor]:
    """Flatten a segmentation batch into per-pixel rows, ignore masked.

    Args:
        cls_score: Logits, (B, C, *spatial).
        label: Hard labels (B, *spatial) with ``ignore_index``, or soft
            labels (B, C, *spatial) (no ignore; use ``weight``).
        weight: Optional per-pixel weights, (B, *spatial).
        ignore_index: Label of the pixels left out.

    Returns:
        ``(prob, target, keep)``: softmax probabilities (N, C), one-hot or
        soft labels (N, C) and per-pixel weights (N,) that are 0 on ignored
        pixels.
    """
    B, C = cls_score.shape[:2]
    prob = cls_score.reshape(B, C, -1).softmax(1).transpose(1, 2).reshape(
        -1, C)
    if label.dim() == cls_score.dim() and label.shape[1] == C and \
            label.is_floating_point():
        target = label.reshape(B, C, -1).transpose(1, 2).reshape(-1, C).to(
            prob.dtype)
        keep = torch.ones(target.shape[0], dtype=prob.dtype,
                          device=prob.device)
    else:
        lab = label.reshape(-1).long()
        valid = (lab != ignore_index) & (lab >= 0) & (lab < C)
        target = torch.zeros_like(prob)
        idx = valid.nonzero().squeeze(1)
        target[idx, lab[idx]] = 1.0
        keep = valid.to(prob.dtype)
    if weight is not None:
        keep = keep * weight.reshape(-1).to(prob.dtype)
    return prob, target, keep
