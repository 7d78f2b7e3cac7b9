"""The default pixel regularizer: the direct hinge bound on IoU / F-beta.

For every class ``c`` of a batch the positives are the pixels labelled
``c``, the negatives every other valid pixel, and ``s_ic`` the log-odds of
the softmax. The hinge counts (``segreg.ops.hinge_counts``)::

    tp_c = sum_{y_i = c} w_i min(1, s_ic)          (<= true positives)
    fp_c = sum_{y_j != c} w_j max(0, 1 + s_jc)     (>= false positives)
    n_c  = sum_{y_i = c} w_i

give the class's metric lower bound ``m_c = tp_c / (n_c + fp_c)`` (IoU) or
``(1 + b^2) tp_c / (tp_c + b^2 n_c + fp_c)`` (F-beta), with the denominator
frozen at ``tp_c = fp_c = 0`` when ``tp_c < 0``
(``segreg.ops.hinge_bound_from_counts``). The loss is the mean of
``1 - m_c`` over the selected classes; a class absent from the batch
(``classes='all'``) gets ``1 - 1 / (1 + fp_c)``. By default every 4th pixel
of each spatial dim is used (``sample_stride=4``, weighted 16: unbiased
sums). It is the relaxation of the paper's LP (Ravi et al., AAAI 2020) at
the fixed threshold 1: no sort, no state. Under DDP the three (C,) sums are
all-reduced: O(C) communication.

Derivation: docs/regularizer_derivation.md, section 9; measurements:
docs/experiments.md.
"""
from __future__ import annotations

import torch
from mmseg.registry import MODELS

from segreg.ops import hinge_bound_from_counts, hinge_counts
from segreg.utils.dist import all_reduce_sum

from .pixel_metric_loss import (ClassTerms, PixelBatch, PixelMetricLoss,
                                check_metric)

__all__ = ['HingeBoundLoss']


@MODELS.register_module()
class HingeBoundLoss(PixelMetricLoss):
    """Class-wise direct hinge bound on IoU / F-beta (the default form).

    ``DualIoULoss`` / ``DualFbetaLoss`` with ``solver='direct'`` (the
    default) build this class.

    Args:
        metric (str): ``'iou'`` or ``'fbeta'``.
        beta (float): F-beta's beta (``metric='fbeta'`` only). Default 1.
        **kwargs: Of :class:`PixelMetricLoss` (``num_classes``, ``classes``,
            ``class_weight``, ``sample_stride`` (default 4), ``sync``,
            ``nonfinite``, ``loss_weight``, ``loss_name``).

    Shape:
        cls_score (B, C, H, W); label (B, H, W); weight (B, H, W) or None.
    """

    def __init__(self, metric: str = 'iou', beta: float = 1.0,
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.metric, self.beta = check_metric(metric, beta)

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        tp, fp, n = hinge_counts(batch.logits, batch.labels, batch.weight)
        if batch.sync:  # one (3, C) all-reduce (and one in backward)
            tp, fp, n = all_reduce_sum(torch.stack([tp, fp, n])).unbind()
        present = n > 0
        m = hinge_bound_from_counts(tp, fp, n, self.beta, self.metric)
        m = torch.where(present, m, 1.0 / (1.0 + fp))  # absent: smoothed
        return ClassTerms(1.0 - m, present,
                          stats=dict(n=n.detach(), bound=m.detach()))
