"""Rate metrics of one class from per-pixel scores: P@R, R@P, ROC-AUC.

What the rate-constraint losses (``segreg.models.losses.rate_losses``)
optimise, measured on the test set: for a target class ``t`` the positives
are the valid pixels labelled ``t``, the negatives every other valid pixel,
and the score of a pixel is the model's softmax probability of ``t``. Over
all thresholds (every distinct score, ties kept together):

* precision at recall ``r``: the largest precision among thresholds whose
  recall is ``>= r``;
* recall at precision ``p``: the largest recall among thresholds whose
  precision is ``>= p`` (0 if none);
* ROC-AUC: the area under the ROC curve (trapezoids between distinct
  scores, so ties count one half: the Mann-Whitney statistic).

The same definitions as torchmetrics' ``binary_precision_at_fixed_recall``,
``binary_recall_at_fixed_precision`` and ``binary_auroc`` (tested against
them). ``SegregRateMetric`` collects the scores of the valid pixels (one
float32 per pixel and target class) and reports the three in percent.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

__all__ = ['pr_points', 'precision_at_recall', 'recall_at_precision',
           'roc_auc', 'rate_metrics', 'SegregRateMetric']


def _counts(scores: np.ndarray, targets: np.ndarray):
    """Cumulative (tp, fp) at each distinct score, highest score first."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(targets).reshape(-1).astype(bool)
    order = np.argsort(-s, kind='mergesort')
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else \
        np.zeros(0, dtype=np.int64)
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = np.cumsum(~y)[last].astype(np.float64)
    return tp, fp, float(y.sum()), float((~y).sum())


def pr_points(scores: np.ndarray, targets: np.ndarray):
    """``(precision, recall)`` at every distinct score threshold.

    Args:
        scores: (N,) scores, higher = more positive.
        targets: (N,) bool, the positives.
    """
    tp, fp, P, _ = _counts(scores, targets)
    precision = tp / np.maximum(tp + fp, 1.0)
    recall = tp / P if P > 0 else np.zeros_like(tp)
    return precision, recall


def precision_at_recall(scores, targets, recall: float) -> float:
    """Largest precision with recall ``>= recall`` (NaN without positives)."""
    precision, rec = pr_points(scores, targets)
    if not (np.asarray(targets).astype(bool)).any():
        return float('nan')
    ok = rec >= recall
    return float(precision[ok].max()) if ok.any() else 0.0


def recall_at_precision(scores, targets, precision: float) -> float:
    """Largest recall with precision ``>= precision`` (0 if none; NaN
    without positives)."""
    prec, rec = pr_points(scores, targets)
    if not (np.asarray(targets).astype(bool)).any():
        return float('nan')
    ok = prec >= precision
    return float(rec[ok].max()) if ok.any() else 0.0


def roc_auc(scores, targets) -> float:
    """Area under the ROC curve (NaN without positives or negatives)."""
    tp, fp, P, N = _counts(scores, targets)
    if P == 0 or N == 0:
        return float('nan')
    tpr = np.r_[0.0, tp / P]
    fpr = np.r_[0.0, fp / N]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def rate_metrics(scores, targets, recall: float = 0.8,
                 precision: float = 0.8) -> Dict[str, float]:
    """The three metrics of one class, as fractions in [0, 1]."""
    return dict(precision_at_recall=precision_at_recall(scores, targets,
                                                        recall),
                recall_at_precision=recall_at_precision(scores, targets,
                                                        precision),
                roc_auc=roc_auc(scores, targets))


@METRICS.register_module()
class SegregRateMetric(BaseMetric):
    """P@R, R@P and ROC-AUC of target classes from the softmax scores.

    Add it beside ``SegregIoUMetric`` (tools/test.py does when the config
    has ``rate_metrics = dict(target_classes=[...], recall=.., precision=..)``
    and writes the results to ``metrics.json["rate_metrics"]``).

    Args:
        target_classes (list[int]): The classes measured.
        recall (float): ``r`` of precision at recall. Default 0.8.
        precision (float): ``p`` of recall at precision. Default 0.8.
        ignore_index (int): Ground-truth label left out. Default 255.
    """

    default_prefix = 'rate'

    def __init__(self, target_classes: Sequence[int], recall: float = 0.8,
                 precision: float = 0.8, ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix=None, **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.targets = [int(t) for t in target_classes]
        self.recall, self.precision = float(recall), float(precision)
        self.ignore_index = int(ignore_index)
        #: nested results of the last evaluation (class -> metric -> %)
        self.last_rates: Dict[str, Any] = {}

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        import torch
        for sample in data_samples:
            logits = sample['seg_logits']['data'].float()
            gt = sample['gt_sem_seg']['data'].squeeze(0).to(logits.device)
            valid = gt != self.ignore_index
            prob = torch.softmax(logits, dim=0)[self.targets][:, valid]
            self.results.append((prob.cpu().numpy().astype(np.float32),
                                 gt[valid].cpu().numpy().astype(np.int32)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = list(self.dataset_meta.get('classes', []))
        probs = np.concatenate([r[0] for r in results], axis=1) if results \
            else np.zeros((len(self.targets), 0), np.float32)
        gts = np.concatenate([r[1] for r in results]) if results else \
            np.zeros(0, np.int32)
        out, flat = {}, {}
        for k, t in enumerate(self.targets):
            name = classes[t] if t < len(classes) else str(t)
            m = rate_metrics(probs[k], gts == t, self.recall, self.precision)
            out[name] = dict(
                class_index=t, num_positive_pixels=int((gts == t).sum()),
                num_pixels=int(gts.size),
                precision_at_recall=dict(recall=self.recall,
                                         value=100 * m['precision_at_recall']),
                recall_at_precision=dict(precision=self.precision,
                                         value=100 * m['recall_at_precision']),
                roc_auc=100 * m['roc_auc'])
            key = name.replace(' ', '_')
            flat[f'{key}_P@R{self.recall:g}'] = 100 * m['precision_at_recall']
            flat[f'{key}_R@P{self.precision:g}'] = \
                100 * m['recall_at_precision']
            flat[f'{key}_AUC'] = 100 * m['roc_auc']
        self.last_rates = out
        return flat


def summarize_rate_runs(root: str, arms: Sequence[str],
                        seeds: Sequence[int]) -> str:
    """Markdown table of the rate metrics of ``ROOT/ARM/seedS/eval`` runs.

    Mean +- 95% t half-width over seeds per arm, and the paired delta of
    each arm against the first (``segreg.evaluation.stats.paired_t``).
    """
    import json
    import os.path as osp

    from .stats import paired_t, t_interval
    keys = (('precision_at_recall', 'P@R'), ('recall_at_precision', 'R@P'),
            ('roc_auc', 'ROC-AUC'), ('mIoU', 'mIoU'))
    vals: Dict[str, Dict[str, list]] = {}
    for arm in arms:
        vals[arm] = {k: [] for k, _ in keys}
        for s in seeds:
            with open(osp.join(root, arm, f'seed{s}', 'eval',
                               'metrics.json')) as f:
                data = json.load(f)
            (rates, ) = data['rate_metrics'].values()
            for k, _ in keys:
                v = data[k] if k == 'mIoU' else rates[k]
                vals[arm][k].append(v['value'] if isinstance(v, dict) else v)
    lines = ['| arm | ' + ' | '.join(name for _, name in keys) + ' |',
             '|---' * (len(keys) + 1) + '|']
    for arm in arms:
        cells = []
        for k, _ in keys:
            m, h = t_interval(vals[arm][k])
            cell = f'{m:.2f} ± {h:.2f}'
            if arm != arms[0]:
                d, dh, p = paired_t(vals[arm][k], vals[arms[0]][k])
                lo, hi = d - dh, d + dh
                cell += f' ({d:+.2f} [{lo:+.2f}, {hi:+.2f}], p={p:.3f})'
            cells.append(cell)
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
