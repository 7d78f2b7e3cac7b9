"""The default pixel regularizer: the direct hinge bound on IoU / F-beta.

For every class ``c`` of a batch the positives ``S+_c`` are the pixels
labelled ``c``, the negatives every other valid pixel, and ``s_ic`` the
log-odds of the softmax (``segreg.ops.softmax_log_odds``). With the hinge
counts at threshold 1 (``segreg.ops.classwise_hinge_counts``)::

    tp_c = sum_{S+_c} w_i min(1, s_ic)          (<= true positives)
    fp_c = sum_{S-_c} w_j max(0, 1 + s_jc)      (>= false positives)
    n_c  = sum_{S+_c} w_i

the class's metric lower bound is ``m_c = tp_c / (n_c + fp_c)`` (IoU) or
``(1 + b^2) tp_c / (tp_c + b^2 n_c + fp_c)`` (F-beta), with the denominator
frozen at ``tp_c = fp_c = 0`` when ``tp_c < 0`` (``segreg.ops.
hinge_bound_from_counts``), and the loss is the mean of ``1 - m_c`` over the
selected classes. It is the relaxation of the paper's LP (Ravi et al., AAAI
2020) at the fixed threshold 1: defined for any scores, no sort, no state.
A class absent from the batch (``classes='all'``) gets ``1 / (1 + fp_c)``.
Under DDP the three (C,) sums are all-reduced: O(C) communication.

Derivation: docs/regularizer_derivation.md, section 9; measurements:
docs/experiments.md (the default won on both CPU datasets).
"""
from __future__ import annotations

from functools import partial

import torch
from mmseg.registry import MODELS

from segreg.ops import (classwise_hinge_counts, hinge_bound_from_counts,
                        hinge_counts)
from segreg.ops.fractional_lp import SURROGATES
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
        surrogate (str): ``phi`` of the counts: ``'hinge'`` (default),
            ``'square'`` or ``'logistic'`` (the paper's Remark 3).
        **kwargs: Of :class:`PixelMetricLoss` (``num_classes``, ``classes``,
            ``class_weight``, ``sample_stride`` (default 4), ``sync``,
            ``nonfinite``, ``kernel`` (``'compiled'`` with the hinge
            surrogate only), ``loss_weight``, ``loss_name``).

    Shape:
        cls_score (B, C, H, W); label (B, H, W); weight (B, H, W) or None.
    """

    kernels = ('sparse', 'compiled')

    def __init__(self, metric: str = 'iou', beta: float = 1.0,
                 surrogate: str = 'hinge',
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        if surrogate not in SURROGATES:
            raise ValueError(f'surrogate must be one of {SURROGATES}, got '
                             f'{surrogate!r}')
        self.metric, self.beta = check_metric(metric, beta)
        self.surrogate = surrogate
        if surrogate != 'hinge' and self.kernel != 'sparse':
            raise ValueError(f"HingeBoundLoss: kernel={self.kernel!r} "
                             "implements surrogate='hinge' only, got "
                             f"surrogate={surrogate!r}; use kernel='sparse'")
        # the hinge has a fused op with a hand-written backward (same values
        # and gradients, ~3x faster at every pixel: docs/loss_cost.md); the
        # other surrogates keep the plain autograd path
        self._counts = partial(
            hinge_counts, kernel=self.kernel, checked=True) \
            if surrogate == 'hinge' else partial(classwise_hinge_counts,
                                                 surrogate=surrogate)

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        tp, fp, n = self._counts(batch.logits, batch.labels, batch.weight)
        if batch.sync:
            # one (3, C) all-reduce (and one in backward): latency, not
            # bandwidth, is what small messages cost
            tp, fp, n = all_reduce_sum(torch.stack([tp, fp, n])).unbind()
        present = n > 0
        m = hinge_bound_from_counts(tp, fp, n, self.beta, self.metric)
        m = torch.where(present, m, 1.0 / (1.0 + fp))  # absent: smoothed
        return ClassTerms(1.0 - m, present,
                          stats=dict(n=n.detach(), bound=m.detach()))

