"""The dataset-level bound through a running ratio: IoU over the training set.

Per class ``c`` the hinge bound of the whole training set is a ratio of two
dataset sums of the default's hinge counts, ``M_c = P_c / Q_c`` (IoU:
``P = sum tp``, ``Q = sum (n + fp)``; ``segreg.ops.dataset_ratio``). The
loss keeps running means ``u`` of the batch sums (tp, fp, n) and gives each
batch the direction ``-(grad p_t - lambda_c grad q_t) / q(u)`` with
``lambda_c = p(u) / q(u)``, the running dataset bound: over an epoch its
mean is the gradient of ``1 - M_c``. The term's value is ``1 - lambda_c``.
Every class seen so far counts in every batch (``classes='all'``): an
absent class's false positives still lower its dataset IoU. State (buffers,
checkpointed): ``running`` (3, C) and ``steps``. Under DDP the three (C,)
sums are all-reduced first, so every rank keeps the same state.

Derivation: docs/regularizer_derivation.md, section 17.
"""
from __future__ import annotations

import torch
from mmseg.registry import MODELS

from segreg.ops import dataset_ratio_terms, hinge_counts, running_sums
from segreg.utils.dist import all_reduce_sum

from .pixel_metric_loss import (ClassTerms, PixelBatch, PixelMetricLoss,
                                check_metric)

__all__ = ['DatasetRatioLoss']


@MODELS.register_module()
class DatasetRatioLoss(PixelMetricLoss):
    """Class-wise IoU / F-beta hinge bound of the training set.

    ``DualIoULoss`` / ``DualFbetaLoss`` with ``solver='ratio'`` build this
    class.

    Args:
        num_classes (int): Required (class-level state).
        metric (str): ``'iou'`` or ``'fbeta'``.
        beta (float): F-beta's beta. Default 1.
        gamma_min (float): Floor of the running means' step ``max(1 / t,
            gamma_min)``: the exact mean of the first ``1 / gamma_min``
            batches, then an exponential average over about that many.
            Default 0.01.
        classes (str | list[int]): Default ``'all'`` (every class seen so
            far, present in the batch or not).
        **kwargs: Of :class:`PixelMetricLoss`.
    """

    def __init__(self, num_classes: int = None, metric: str = 'iou',
                 beta: float = 1.0, gamma_min: float = 0.01,
                 classes='all', loss_name: str = 'loss_dual_iou',
                 **kwargs) -> None:
        if num_classes is None:
            raise ValueError("solver='ratio' keeps per-class running sums "
                             'and needs num_classes')
        super().__init__(num_classes=num_classes, classes=classes,
                         loss_name=loss_name, **kwargs)
        self.metric, self.beta = check_metric(metric, beta)
        if not 0 < gamma_min <= 1:
            raise ValueError(f'gamma_min must be in (0, 1], got {gamma_min}')
        self.gamma_min = float(gamma_min)
        self.register_buffer('running', torch.zeros(3, num_classes,
                                                    dtype=torch.float64))
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        tp, fp, n = hinge_counts(batch.logits, batch.labels, batch.weight)
        if batch.sync:
            tp, fp, n = all_reduce_sum(torch.stack([tp, fp, n])).unbind()
        sums = torch.stack([tp, fp, n]).detach()
        if self.training and bool(torch.isfinite(sums).all()):
            with torch.no_grad():
                self.steps += 1
                self.running.copy_(running_sums(self.running, sums,
                                                int(self.steps),
                                                self.gamma_min))
        u = self.running if int(self.steps) > 0 else sums
        out = dataset_ratio_terms(tp, fp, n, u, self.beta, self.metric)
        return ClassTerms(out.term, n > 0, out.seen,
                          stats=dict(n=n.detach(), bound=out.bound))
