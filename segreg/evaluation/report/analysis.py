"""Statistics of the report: arms, intervals, paired differences, bins.

Everything here is numbers (no figures, no text): runs grouped into arms,
the Student-t interval over seeds and the image bootstrap of each summary
metric, the difference of each arm to the baseline, the class order by
pixel frequency and the mIoU of the rarest / middle / most frequent third of
the classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..functional import SUMMARY_METRICS
from ..per_image import PerImageStats
from ..stats import (bootstrap_group_means, bootstrap_p_value,
                     bootstrap_runs, bootstrap_weights, mean_or_nan, paired_t,
                     percentile_interval, t_interval, welch_t)
from .runs import Run


@dataclass
class ArmStats:
    name: str
    runs: List[Run]
    t: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    boot: Optional[Dict[str, np.ndarray]] = None

    #: Per-image stats of each run in the shared image order, and the
    #: resample weights (B, N): kept for the frequency-bin bootstrap.
    boot_per_image: Optional[List[PerImageStats]] = None
    boot_weights: Optional[np.ndarray] = None


@dataclass
class DeltaStats:
    arm: str
    metric: str
    delta: float
    t_half: float
    t_p: float
    test: str
    boot_ci: Tuple[float, float] = (math.nan, math.nan)
    boot_p: float = math.nan


def _pair_seeds(a: List[Run], b: List[Run], notes: List[str],
                arm: str, base: str):
    """Pairs of runs for a paired test, and the name of the test."""
    sa = [r.seed for r in a]
    sb = [r.seed for r in b]
    if None not in sa and None not in sb and len(set(sa)) == len(sa) and \
            len(set(sb)) == len(sb):
        common = sorted(set(sa) & set(sb))
        if len(common) >= 2:
            if len(common) < max(len(sa), len(sb)):
                notes.append(f'[{arm}] paired test over the {len(common)} '
                             f'seeds shared with {base} ({common}); other '
                             f'seeds enter only the means.')
            ia = {r.seed: r for r in a}
            ib = {r.seed: r for r in b}
            return [(ia[s], ib[s]) for s in common], 'paired t (seeds)'
    if len(a) == len(b) and len(a) >= 2 and (None in sa or None in sb):
        notes.append(f'[{arm}] seeds unknown: runs paired with {base} in '
                     f'the order given.')
        return list(zip(a, b)), 'paired t (by order)'
    return None, 'Welch t'


def analyse(runs: List[Run], baseline: Optional[str], notes: List[str],
            bootstrap: int = 1000, seed: int = 0, level: float = 0.95
            ) -> Tuple[Dict[str, ArmStats], List[DeltaStats], Optional[str],
                       Optional[List[str]]]:
    """Group runs into arms, check classes, compute intervals and tests."""
    arms: Dict[str, List[Run]] = {}
    for r in runs:
        arms.setdefault(r.arm, []).append(r)
    if baseline is not None and baseline not in arms:
        notes.append(f'baseline arm {baseline!r} has no usable run; no '
                     f'differences computed.')
    ref_arm = baseline if baseline in arms else next(iter(arms))
    ref_classes = arms[ref_arm][0].classes
    for name in list(arms):
        kept = []
        for r in arms[name]:
            if r.classes != ref_classes:
                diff = next((i for i, (x, y) in enumerate(
                    zip(r.classes, ref_classes)) if x != y),
                    min(len(r.classes), len(ref_classes)))
                theirs = r.classes[diff] if diff < len(r.classes) else '-'
                ours = ref_classes[diff] if diff < len(ref_classes) else '-'
                notes.append(
                    f'[{name}] {r.metrics_dir}: its {len(r.classes)} classes '
                    f'differ from the {len(ref_classes)} of {ref_arm} (first '
                    f'difference at index {diff}: {theirs!r} vs {ours!r}); '
                    f'run left out.')
            else:
                kept.append(r)
        if kept:
            arms[name] = kept
        else:
            del arms[name]
    if baseline not in arms:
        baseline = None
    stats = {name: ArmStats(name, rs) for name, rs in arms.items()}
    for a in stats.values():
        for m in SUMMARY_METRICS:
            a.t[m] = t_interval([r.value(m) for r in a.runs], level)
        if len(a.runs) < 2:
            notes.append(f'[{a.name}] only {len(a.runs)} run: no CI over '
                         f'seeds and no paired t-test for this arm (train '
                         f'more seeds, e.g. tools/ablate.py --seeds 0 1 2).')
    # image bootstrap: one set of resamples shared by all arms
    ref_run = next((r for a in ([stats[baseline]] if baseline else []) +
                    list(stats.values()) for r in a.runs
                    if r.per_image is not None), None)
    if ref_run is not None and bootstrap > 0:
        names = ref_run.per_image.names.tolist()
        weights = bootstrap_weights(len(names), bootstrap,
                                    np.random.default_rng(seed))
        for a in stats.values():
            ok = True
            for r in a.runs:
                if r.per_image is None:
                    ok = False
                elif sorted(r.per_image.names.tolist()) != sorted(names):
                    notes.append(f'[{a.name}] {r.metrics_dir}: evaluated on '
                                 f'other images than {ref_run.metrics_dir}; '
                                 f'no image bootstrap for this arm.')
                    ok = False
            if not ok:
                notes.append(f'[{a.name}] image-bootstrap CI not available '
                             f'(a run lacks comparable per-image counts).')
                continue
            a.boot_per_image = [r.per_image.reorder(names) for r in a.runs]
            a.boot_weights = weights
            a.boot = bootstrap_runs(a.boot_per_image, weights,
                                    beta=float(a.runs[0].metrics.get(
                                        'beta', 1.0)))
    deltas: List[DeltaStats] = []
    if baseline is not None:
        base = stats[baseline]
        for a in stats.values():
            if a.name == baseline:
                continue
            pairs, test = _pair_seeds(a.runs, base.runs, notes, a.name,
                                      baseline)
            for m in SUMMARY_METRICS:
                delta = mean_or_nan([r.value(m) for r in a.runs]) - \
                    mean_or_nan([r.value(m) for r in base.runs])
                if pairs is not None:
                    _, half, p = paired_t([x.value(m) for x, _ in pairs],
                                          [y.value(m) for _, y in pairs],
                                          level)
                else:
                    _, half, p = welch_t([r.value(m) for r in a.runs],
                                         [r.value(m) for r in base.runs],
                                         level)
                d = DeltaStats(a.name, m, delta, half, p,
                               test if not math.isnan(half) else 'n/a')
                if a.boot is not None and base.boot is not None:
                    diff = a.boot[m] - base.boot[m]
                    d.boot_ci = percentile_interval(diff, level)
                    d.boot_p = bootstrap_p_value(diff)
                deltas.append(d)
    return stats, deltas, baseline, ref_classes


# ---------------------------------------------------------------- classes
def class_order(freq: np.ndarray) -> np.ndarray:
    """Class indices sorted by ground-truth pixel count, rarest first."""
    return np.argsort(freq, kind='stable')


def nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN where a column is all NaN."""
    n = np.sum(~np.isnan(x), axis=0)
    s = np.nansum(x, axis=0)
    return np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)


#: Names of the three frequency bins, rarest first.
BIN_NAMES = ('rare third', 'middle third', 'frequent third')


def frequency_bins(freq: np.ndarray, num_bins: int = 3) -> List[np.ndarray]:
    """Class indices split into ``num_bins`` groups by pixel frequency.

    Classes are sorted by ``freq`` (rarest first, ties in class order) and
    cut into groups of equal size (the first groups one class larger when
    the count does not divide), so each third holds a third of the classes,
    not of the pixels. Each group lists its classes rarest first.
    """
    return list(np.array_split(class_order(freq), num_bins))


@dataclass
class BinStats:
    """mIoU of each frequency bin for one arm (percent)."""

    arm: str
    per_run: np.ndarray                     # (runs, bins)
    t: List[Tuple[float, float]]            # (mean, half-width) per bin
    boot: Optional[np.ndarray] = None       # (bins, B) or None
    delta: Optional[List[Tuple[float, float, float]]] = None  # d, half, p
    delta_boot_ci: Optional[List[Tuple[float, float]]] = None


def bin_stats(stats: Dict[str, ArmStats], bins: Sequence[np.ndarray],
              baseline: Optional[str], level: float = 0.95
              ) -> Dict[str, BinStats]:
    """Per arm: bin mIoU per seed, t interval, image bootstrap, delta.

    A bin's mIoU is the mean IoU of its scored classes (the report's class
    rule: classes absent from prediction and ground truth are left out).
    The bootstrap uses the arm's shared image resamples; the difference to
    the baseline is paired over seeds exactly like the summary metrics.
    """
    out: Dict[str, BinStats] = {}
    for name, a in stats.items():
        per_run = np.array([[_nanmean(r.class_iou()[b]) for b in bins]
                            for r in a.runs])
        bs = BinStats(name, per_run,
                      [t_interval(per_run[:, j], level)
                       for j in range(len(bins))])
        if a.boot_per_image is not None:
            bs.boot = 100.0 * bootstrap_group_means(
                a.boot_per_image, a.boot_weights, bins,
                beta=float(a.runs[0].metrics.get('beta', 1.0)))
        out[name] = bs
    if baseline is None or baseline not in out:
        return out
    base = out[baseline]
    base_seeds = [r.seed for r in stats[baseline].runs]
    for name, bs in out.items():
        if name == baseline:
            continue
        seeds = [r.seed for r in stats[name].runs]
        common = [s for s in seeds if s is not None and s in base_seeds]
        bs.delta = []
        for j in range(len(bins)):
            d = float(np.nanmean(bs.per_run[:, j]) -
                      np.nanmean(base.per_run[:, j]))
            if len(common) >= 2:
                x = [bs.per_run[seeds.index(s), j] for s in common]
                y = [base.per_run[base_seeds.index(s), j] for s in common]
                _, half, p = paired_t(x, y, level)
            else:
                _, half, p = welch_t(bs.per_run[:, j], base.per_run[:, j],
                                     level)
            bs.delta.append((d, half, p))
        if bs.boot is not None and base.boot is not None:
            bs.delta_boot_ci = [percentile_interval(bs.boot[j] -
                                                    base.boot[j], level)
                                for j in range(len(bins))]
    return out


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


# ---------------------------------------------------------------- confusion
def row_normalised(conf: np.ndarray) -> np.ndarray:
    """Each ground-truth row divided by its pixel count (NaN if empty)."""
    conf = np.asarray(conf, dtype=np.float64)
    rows = conf.sum(1, keepdims=True)
    return np.divide(conf, rows, out=np.full(conf.shape, np.nan),
                     where=rows > 0)


def arm_confusion(runs: Sequence[Run]) -> Optional[np.ndarray]:
    """Sum of the runs' confusion matrices (None if a run has none)."""
    mats = [r.confusion for r in runs]
    if not mats or any(m is None for m in mats):
        return None
    return np.sum(mats, axis=0)


def top_confusions(base: np.ndarray, others: Dict[str, np.ndarray],
                   count: int = 20) -> List[Tuple[int, int]]:
    """Off-diagonal (gt, pred) cells with the largest row-normalised share.

    Ranked by the largest share in the baseline or any arm, so a confusion
    an arm introduces is listed as well as one it removes.
    """
    mats = [base] + list(others.values())
    share = np.nanmax(np.stack([np.nan_to_num(m) for m in mats]), axis=0)
    np.fill_diagonal(share, -1.0)
    flat = np.argsort(-share, axis=None, kind='stable')[:count]
    cells = [tuple(int(v) for v in np.unravel_index(i, share.shape))
             for i in flat]
    return [c for c in cells if share[c] > 0]
