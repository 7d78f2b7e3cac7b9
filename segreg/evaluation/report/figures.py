"""The report's matplotlib figures (PNG, Agg backend, no display needed)."""
from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from .analysis import ArmStats, class_order
from .runs import _SKIP_SCALARS


def _plt():
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    return plt


def _colors(names: Sequence[str]) -> Dict[str, tuple]:
    plt = _plt()
    cmap = plt.get_cmap('tab10')
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def fig_summary(stats: Dict[str, ArmStats], path: str) -> str:
    plt = _plt()
    metrics = ['mIoU', 'mFscore', 'mAcc', 'aAcc']
    names = list(stats)
    colors = _colors(names)
    fig, axes = plt.subplots(1, len(metrics),
                             figsize=(3.2 * len(metrics), 3.4))
    for ax, m in zip(axes, metrics):
        for i, n in enumerate(names):
            a = stats[n]
            mean, half = a.t[m]
            ax.bar(i, mean, color=colors[n], alpha=0.6,
                   yerr=None if math.isnan(half) else half, capsize=4)
            vals = [r.value(m) for r in a.runs]
            ax.scatter(np.full(len(vals), i) + np.linspace(
                -0.15, 0.15, len(vals)), vals, color='k', s=10, zorder=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha='right')
        ax.set_title(m + ' (%)')
        tops = [r.value(m) for a in stats.values() for r in a.runs]
        tops += [a.t[m][0] + a.t[m][1] for a in stats.values()]
        top = max((v for v in tops if not math.isnan(v)), default=1.0)
        ax.set_ylim(0.0, min(100.0, max(1.15 * top, 1.0)))
    fig.suptitle('Mean over seeds, 95% t-CI (bars) and each seed (dots)',
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def fig_class_delta(classes: Sequence[str], freq: np.ndarray,
                    delta: np.ndarray, arm: str, baseline: str,
                    path: str) -> str:
    plt = _plt()
    order = class_order(freq)
    share = 100.0 * freq / max(freq.sum(), 1.0)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.24 * n))
    y = np.arange(n)
    d = delta[order]
    colors = ['#2a9d3a' if v >= 0 else '#c0392b' for v in np.nan_to_num(d)]
    ax.barh(y, np.nan_to_num(d), color=colors)
    labels = []
    for i in order:
        tag = f'{classes[i]} ({share[i]:.2g}%)' if freq[i] > 0 else \
            f'{classes[i]} (absent)'
        labels.append(tag)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    for yi, v in zip(y, d):
        if math.isnan(v):
            ax.text(0, yi, ' n/a', va='center', fontsize=7, color='gray')
    ax.axvline(0, color='k', lw=0.8)
    ax.invert_yaxis()  # rarest at the top
    ax.set_xlabel(f'IoU({arm}) - IoU({baseline}), percentage points')
    ax.set_title('Per-class IoU change, rarest class first (GT pixel share)',
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _smooth(y: np.ndarray) -> np.ndarray:
    w = max(1, len(y) // 50)
    if w == 1:
        return y
    k = np.ones(w) / w
    pad = np.concatenate([np.full(w - 1, y[0]), y])
    return np.convolve(pad, k, mode='valid')


def _curve_keys(stats: Dict[str, ArmStats]):
    loss, other, val = [], [], []
    for a in stats.values():
        for r in a.runs:
            for rec in r.scalars or []:
                for k, v in rec.items():
                    if k.startswith('_') or k in _SKIP_SCALARS or \
                            not isinstance(v, (int, float)):
                        continue
                    bucket = (val if rec['_kind'] == 'val' else
                              loss if 'loss' in k else other)
                    if k not in bucket:
                        bucket.append(k)
    # dual variables and other regularizer state first among "other"
    other.sort(key=lambda k: (not re.search(r'dual|lambda|tau|eps|mult',
                                            k), k))
    return loss, val, other


def fig_curves(stats: Dict[str, ArmStats], keys: List[str], kind: str,
               title: str, path: str, max_panels: int = 24) -> Optional[str]:
    if not keys:
        return None
    plt = _plt()
    keys = keys[:max_panels]
    colors = _colors(list(stats))
    cols = min(3, len(keys))
    rows = int(math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows),
                             squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for name, a in stats.items():
            for j, r in enumerate(a.runs):
                pts = [(rec['step'], rec[key]) for rec in r.scalars or []
                       if rec['_kind'] == kind and
                       isinstance(rec.get(key), (int, float))]
                if not pts:
                    continue
                x, y = map(np.asarray, zip(*pts))
                y = y.astype(np.float64)
                style = dict(color=colors[name], lw=1.1, alpha=0.85,
                             label=name if j == 0 else None)
                if kind == 'val':
                    ax.plot(x, y, marker='o', ms=3, **style)
                else:
                    ax.plot(x, _smooth(y), **style)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis('off')
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc='upper right', fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.92, 0.95))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def fig_confusion(matrix: np.ndarray, labels: Sequence[str], title: str,
                  path: str, diverging: bool = False) -> str:
    """Heatmap of a row-normalised confusion matrix (or a difference).

    Args:
        matrix: ``(C, C)`` fractions, rows = ground truth, already in the
            display order; NaN rows (class absent from the ground truth) grey.
        labels: Class names in the same order.
        title: Figure title.
        path: Output PNG.
        diverging: A difference: red-blue scale symmetric around 0.
    """
    plt = _plt()
    n = len(labels)
    side = min(11.0, 2.2 + 0.32 * n)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    pct = 100.0 * np.asarray(matrix, dtype=np.float64)
    if diverging:
        lim = max(float(np.nanmax(np.abs(pct))) if np.isfinite(pct).any()
                  else 1.0, 1.0)
        cmap, vmin, vmax = plt.get_cmap('RdBu'), -lim, lim
    else:
        cmap, vmin, vmax = plt.get_cmap('viridis'), 0.0, 100.0
    cmap = cmap.with_extremes(bad='#dddddd')
    im = ax.imshow(np.ma.masked_invalid(pct), cmap=cmap, vmin=vmin,
                   vmax=vmax, interpolation='nearest')
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 8 if n <= 20 else 6
    ax.set_xticklabels(labels, rotation=60, ha='right', fontsize=fs)
    ax.set_yticklabels(labels, fontsize=fs)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('ground-truth class')
    if n <= 16:
        for i in range(n):
            for j in range(n):
                v = pct[i, j]
                if np.isfinite(v) and abs(v) >= 0.5:
                    dark = (abs(v) > 0.6 * vmax) if diverging else v < 60
                    ax.text(j, i, f'{v:.0f}', ha='center', va='center',
                            fontsize=6.5,
                            color='white' if dark else 'black')
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label('percentage points' if diverging else
                 '% of the ground-truth class\'s pixels', fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
