"""Confidence intervals and tests for "with vs without the regularizer".

Two sources of variation are reported separately:

* **seeds** (training randomness): the per-seed metric values of an arm give
  a Student-t interval ``mean +- t_{n-1} s / sqrt(n)``; the difference between
  two arms is tested with a paired t-test over seeds (seed i of the arm vs
  seed i of the baseline), or Welch's t-test when the seeds cannot be paired.
  Needs at least two seeds per arm.
* **images** (test-set sampling): the test images are resampled with
  replacement (the same resample for every run, so arms stay paired); each
  replicate's metrics are recomputed from the per-image class counts of
  :mod:`segreg.evaluation.per_image` with the class rule of
  :mod:`segreg.evaluation.functional`, averaged over the arm's seeds. The
  percentile interval of the replicates is the image-bootstrap CI; for a
  difference, the two-sided p-value is ``2 min(P(d <= 0), P(d >= 0))`` over
  the replicates (at least ``1 / B``).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .functional import SUMMARY_METRICS, class_scores, summary_from_counts
from .per_image import PerImageStats


def t_interval(values: Sequence[float], level: float = 0.95
               ) -> Tuple[float, float]:
    """Mean and half-width of the Student-t CI; half-width NaN if n < 2."""
    x = np.asarray([v for v in values if v is not None and
                    not math.isnan(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan
    from scipy import stats
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / \
        math.sqrt(x.size)
    return mean, float(half)


def paired_t(a: Sequence[float], b: Sequence[float], level: float = 0.95
             ) -> Tuple[float, float, float]:
    """Paired t-test of ``a - b``: (mean difference, CI half-width, p).

    NaN half-width and p when fewer than two pairs. When all differences
    are equal (zero variance) the half-width is 0 and p is 1 if they are 0,
    else 0.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean, half = t_interval(d, level)
    if d.size < 2:
        return mean, math.nan, math.nan
    if np.allclose(d, d[0]):
        return mean, 0.0, (1.0 if d[0] == 0 else 0.0)
    from scipy import stats
    return mean, half, float(stats.ttest_rel(a, b).pvalue)


def welch_t(a: Sequence[float], b: Sequence[float], level: float = 0.95
            ) -> Tuple[float, float, float]:
    """Welch's unpaired t-test of mean(a) - mean(b): (difference, half, p)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0, (1.0 if diff == 0 else 0.0)
    from scipy import stats
    dof = (va + vb)**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof) * se)
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return diff, half, p


def bootstrap_weights(num_images: int, num_samples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Multiplicity of each image in each resample, shape ``(B, N)``."""
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images),
                           size=num_samples).astype(np.float64)


def bootstrap_runs(runs: Sequence[PerImageStats], weights: np.ndarray,
                   beta: float = 1.0, chunk: int = 250
                   ) -> Dict[str, np.ndarray]:
    """Summary metrics of resampled test sets, averaged over ``runs``.

    Args:
        runs: Per-image stats of the seeds of one arm, images in the same
            order as the columns of ``weights``.
        weights: ``(B, N)`` image multiplicities (:func:`bootstrap_weights`).
        beta: F-score beta.
        chunk: Replicates per matrix product (bounds memory).

    Returns:
        ``{metric: (B,) array}`` in percent, the mean over runs of each
        run's metric on each resampled test set.
    """
    B = weights.shape[0]
    out = {k: np.zeros(B) for k in SUMMARY_METRICS}
    for run in runs:
        mats = [run.sparse_rows(k) for k in
                ('intersect', 'gt_area', 'pred_area')]
        for start in range(0, B, chunk):
            w = weights[start:start + chunk]
            tp, gt, pred = (np.asarray((m.T @ w.T).T) for m in mats)
            summary = summary_from_counts(tp, gt, pred, beta)
            for k in SUMMARY_METRICS:
                out[k][start:start + chunk] += 100.0 * summary[k]
    for k in SUMMARY_METRICS:
        out[k] /= max(len(runs), 1)
    return out


def bootstrap_group_means(runs: Sequence[PerImageStats], weights: np.ndarray,
                          groups: Sequence[np.ndarray], metric: str = 'IoU',
                          beta: float = 1.0, chunk: int = 250) -> np.ndarray:
    """Mean class score of class groups on resampled test sets.

    For each resample the per-class counts of every run are recomputed as in
    :func:`bootstrap_runs`, the per-class ``metric`` follows the class rule
    (classes absent from prediction and ground truth are NaN and left out),
    and each group's value is the mean over its scored classes, averaged
    over ``runs``.

    Args:
        runs: Per-image stats of the seeds of one arm (same image order as
            the columns of ``weights``).
        weights: ``(B, N)`` image multiplicities.
        groups: Class index arrays (e.g. the frequency thirds).
        metric: A per-class metric of ``functional.class_scores``.
        beta: F-score beta.
        chunk: Replicates per matrix product.

    Returns:
        ``(G, B)`` array, fractions in [0, 1] (NaN where a group has no
        scored class).
    """
    B = weights.shape[0]
    total = np.zeros((len(groups), B))
    for run in runs:
        mats = [run.sparse_rows(k) for k in
                ('intersect', 'gt_area', 'pred_area')]
        for start in range(0, B, chunk):
            w = weights[start:start + chunk]
            tp, gt, pred = (np.asarray((m.T @ w.T).T) for m in mats)
            score = class_scores(tp, gt, pred, beta)[metric]
            for j, g in enumerate(groups):
                x = score[:, np.asarray(g, dtype=np.int64)]
                n = np.sum(~np.isnan(x), axis=1)
                total[j, start:start + chunk] += np.divide(
                    np.nansum(x, axis=1), n, out=np.full(len(x), np.nan),
                    where=n > 0)
    return total / max(len(runs), 1)


def percentile_interval(samples: np.ndarray, level: float = 0.95
                        ) -> Tuple[float, float]:
    """Percentile bootstrap interval (NaN samples ignored)."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_p_value(deltas: np.ndarray) -> float:
    """Two-sided bootstrap p-value that the difference is zero."""
    d = np.asarray(deltas, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan
    p = 2.0 * min(np.mean(d <= 0), np.mean(d >= 0))
    return float(min(1.0, max(p, 1.0 / d.size)))


def mean_or_nan(values: Sequence[Optional[float]]) -> float:
    x = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(x)) if x else math.nan
