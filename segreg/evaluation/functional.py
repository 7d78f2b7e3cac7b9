"""Segmentation metrics from pixel counts, with one class-inclusion rule.

Every metric here is computed from three per-class pixel counts: true
positives ``tp`` (GT c, predicted c), the ground-truth area ``gt`` (GT c) and
the predicted area ``pred`` (predicted c); pixels whose ground truth is
``ignore_index`` are dropped before counting.

The class-inclusion rule (docs/evaluation.md), applied to *every* metric:

* a class absent from both prediction and ground truth (``gt + pred == 0``)
  has no score (NaN) and is left out of the class mean;
* any other class is scored, and a ratio whose denominator is 0 counts as 0.
  So a class predicted but absent from the ground truth scores IoU 0, Acc
  (= Recall) 0, Precision 0, Dice 0, F 0; a class in the ground truth but
  never predicted scores 0 everywhere as well.

This is the rule of mmseg's mIoU and of torchmetrics' macro averages
(``MulticlassJaccardIndex``, ``MulticlassFBetaScore``, ``MulticlassAccuracy``,
``MulticlassPrecision``, ``MulticlassRecall`` with ``zero_division=0``: they
drop a class only when ``tp + fp + fn == 0``). mmseg's ``IoUMetric`` applies it
to IoU only: its Acc, Recall and F-score are 0/0 = NaN for a class predicted
but absent from the ground truth, and its Precision (hence its F-score) is
0/0 = NaN for a class never predicted; ``np.nanmean`` then drops those
classes. mmseg's mFscore, mAcc, mRecall and mPrecision therefore average over
smaller sets of classes than its mIoU, skipping exactly the classes that
score 0, so they are never lower than segreg's; false positives on absent
classes cost nothing there. segreg scores those classes 0 in every metric, so
all class means run over the same classes and equal torchmetrics' macro
averages.

Definitions per class (``fp = pred - tp``, ``fn = gt - tp``)::

    IoU       = tp / (tp + fp + fn)
    Acc       = Recall = tp / (tp + fn)
    Precision = tp / (tp + fp)
    Dice      = 2 tp / (2 tp + fp + fn)
    Fscore    = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)

and ``aAcc = sum(tp) / sum(gt)`` (pixel accuracy). With ``beta = 1`` Dice and
Fscore coincide (F1 computed from counts equals the harmonic mean of P and R,
and is 0 when both are 0). Values are fractions in [0, 1] here; the tools
report percent.

All functions work on NumPy arrays whose last axis is the class axis, so the
same code scores one run (shape ``(C,)``) and a batch of bootstrap replicates
(shape ``(B, C)``).
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

#: Per-class metric names, in the order the tools print them.
CLASS_METRICS: Tuple[str, ...] = ('IoU', 'Acc', 'Dice', 'Fscore', 'Precision',
                                  'Recall')
#: Summary metric names (class means prefixed with ``m``, plus ``aAcc``).
SUMMARY_METRICS: Tuple[str, ...] = ('aAcc', 'mIoU', 'mAcc', 'mDice',
                                    'mFscore', 'mPrecision', 'mRecall')

CONVENTION = (
    'A class absent from both the prediction and the ground truth is '
    'excluded from every class mean (NaN); every other class is scored, a '
    'zero denominator counting as 0, so a class predicted but absent from the '
    'ground truth scores 0 in IoU, Acc, Dice, Fscore, Precision and Recall. '
    'This is the rule of mmseg\'s mIoU and of torchmetrics\' macro averages. '
    'mmseg\'s own mAcc/mRecall/mFscore instead drop classes predicted but '
    'absent from the ground truth, and its mPrecision/mFscore drop classes '
    'never predicted, so those values can be higher than segreg\'s; mIoU and '
    'aAcc are identical. Pixels labelled ignore_index are not counted.')


def _as_int_labels(x, name: str) -> np.ndarray:
    if hasattr(x, 'detach'):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        if np.issubdtype(x.dtype, np.floating) and np.all(x == np.round(x)):
            x = x.astype(np.int64)
        else:
            raise TypeError(f'{name} must hold integer labels, got {x.dtype}')
    return x.astype(np.int64, copy=False)


def confusion_matrix(pred, gt, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """Count pixels per (ground truth, prediction) pair.

    Args:
        pred: Predicted labels, any shape, values in ``[0, num_classes)``.
        gt: Ground-truth labels, same shape; ``ignore_index`` pixels are
            dropped.
        num_classes: Number of classes ``C``.
        ignore_index: Ground-truth value that marks unlabelled pixels.

    Returns:
        ``(C, C)`` int64 matrix, rows = ground truth, cols = prediction.

    Raises:
        ValueError: On a shape mismatch or a label outside ``[0, C)`` (other
            than ``ignore_index`` in the ground truth); mmseg silently drops
            such pixels, which hides label-mapping mistakes.
    """
    pred = _as_int_labels(pred, 'pred').reshape(-1)
    gt = _as_int_labels(gt, 'gt').reshape(-1)
    if pred.shape != gt.shape:
        raise ValueError(f'pred has {pred.size} pixels, gt {gt.size}')
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    for arr, name in ((gt, 'ground truth'), (pred, 'prediction')):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            bad = arr[(arr < 0) | (arr >= num_classes)]
            raise ValueError(
                f'{name} holds label(s) {sorted(set(bad.tolist()))[:5]} '
                f'outside [0, {num_classes}) (ignore_index={ignore_index})')
    flat = np.bincount(gt * num_classes + pred,
                       minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def counts_from_confusion(conf: np.ndarray
                          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(tp, gt, pred)`` per class from a ``(..., C, C)`` matrix."""
    conf = np.asarray(conf)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    return tp, conf.sum(-1), conf.sum(-2)


def _ratio(num: np.ndarray, den: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """``num / den`` with 0/0 -> 0 for scored classes and NaN for the rest."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape),
                    where=den > 0)
    return np.where(scored, out, np.nan)


def class_scores(tp, gt, pred, beta: float = 1.0) -> Dict[str, np.ndarray]:
    """Per-class metrics from per-class counts (last axis = classes).

    Args:
        tp: True-positive pixels per class, shape ``(..., C)``.
        gt: Ground-truth pixels per class, same shape.
        pred: Predicted pixels per class, same shape.
        beta: Weight of recall in the F-score.

    Returns:
        ``{name: array (..., C)}`` for :data:`CLASS_METRICS`, fractions,
        NaN where the class is absent from both prediction and ground truth.
    """
    tp = np.asarray(tp, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if np.any(tp > np.minimum(gt, pred)):
        raise ValueError('tp exceeds the ground-truth or predicted area')
    fp, fn = pred - tp, gt - tp
    scored = (gt + pred) > 0
    b2 = float(beta) ** 2
    recall = _ratio(tp, gt, scored)
    return {
        'IoU': _ratio(tp, tp + fp + fn, scored),
        'Acc': recall,
        'Dice': _ratio(2 * tp, 2 * tp + fp + fn, scored),
        'Fscore': _ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, scored),
        'Precision': _ratio(tp, pred, scored),
        'Recall': recall.copy(),
    }


def _nanmean_last(x: np.ndarray) -> np.ndarray:
    n = np.sum(~np.isnan(x), axis=-1)
    s = np.nansum(x, axis=-1)
    return np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)


def summary_from_counts(tp, gt, pred, beta: float = 1.0
                        ) -> Dict[str, np.ndarray]:
    """Summary metrics (:data:`SUMMARY_METRICS`) from per-class counts.

    Class means average over the classes that are not NaN (see the module
    docstring); ``aAcc`` is NaN when no pixel is labelled. Shapes: counts
    ``(..., C)`` -> each metric ``(...)``. Fractions, not percent.
    """
    scores = class_scores(tp, gt, pred, beta)
    tp_sum = np.asarray(tp, dtype=np.float64).sum(-1)
    gt_sum = np.asarray(gt, dtype=np.float64).sum(-1)
    out = {'aAcc': np.divide(tp_sum, gt_sum,
                             out=np.full(np.shape(tp_sum), np.nan),
                             where=gt_sum > 0)}
    for name in CLASS_METRICS:
        out['m' + name] = _nanmean_last(scores[name])
    return out


def metrics_from_confusion(conf: np.ndarray, beta: float = 1.0) -> dict:
    """All metrics of one evaluation from its confusion matrix.

    Args:
        conf: ``(C, C)`` matrix, rows = ground truth, cols = prediction.
        beta: Weight of recall in the F-score.

    Returns:
        ``{'aAcc': float, 'mIoU': float, ..., 'per_class': {metric: (C,)
        array}}``, fractions in [0, 1], NaN for excluded classes.
    """
    tp, gt, pred = counts_from_confusion(conf)
    summary = {k: float(v) for k, v in
               summary_from_counts(tp, gt, pred, beta).items()}
    summary['per_class'] = class_scores(tp, gt, pred, beta)
    return summary
