"""The with/without comparison report behind ``tools/compare.py``.

Input: labelled runs (``arm -> [folder, ...]``, one folder per seed), each a
training work dir or a metrics folder written by ``tools/test.py``. Output in
one folder::

    report.md, report.html   the same content; the HTML embeds its figures
                             (base64) and opens offline
    figures/*.png            summary, per-class delta, training curves
    configs/*.py             the config dump of each run (as trained)
    summary.json             the numbers of the tables, machine-readable

What it computes (numbers in percent):

* per arm: mean over seeds of each summary metric with a Student-t 95% CI
  (needs 2+ seeds), and a 95% image-bootstrap CI (resampling test images,
  :mod:`segreg.evaluation.stats`);
* per arm vs the baseline arm: difference of means, paired t-test over seeds
  (seed i vs seed i; Welch's test if seeds cannot be paired) and a paired
  image-bootstrap CI and p-value (the same resampled images for both arms);
* per-class IoU differences, classes sorted by ground-truth pixel frequency,
  rarest first;
* training curves from ``<work_dir>/<timestamp>/vis_data/scalars.json``: loss
  terms, validation mIoU, and every other logged scalar (dual variables...);
* the config dump and the commands of each run.

Problems with the input never stop the report: each run or piece that cannot
be used is left out and listed under "Left out" with the reason.
"""
from __future__ import annotations

import base64
import glob
import html
import json
import math
import os
import os.path as osp
import re
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .functional import CONVENTION, SUMMARY_METRICS
from .metrics_file import (CONFUSION_FILE, METRICS_FILE, MetricsFileError,
                           load_metrics)
from .per_image import PER_IMAGE_FILE, PerImageStats
from .stats import (bootstrap_p_value, bootstrap_runs, bootstrap_weights,
                    mean_or_nan, paired_t, percentile_interval, t_interval,
                    welch_t)

#: Written by tools/ablate.py into each run's work dir.
RUN_RECORD_FILE = 'ablate_run.json'
#: Scalars that are bookkeeping, not curves worth a plot.
_SKIP_SCALARS = {'iter', 'step', 'epoch', 'time', 'data_time', 'memory'}
_VAL_KEYS = set(SUMMARY_METRICS)


class ReportError(RuntimeError):
    """Nothing usable: no run could be read."""


# ---------------------------------------------------------------- runs
@dataclass
class Run:
    """One evaluated training run (one seed of one arm)."""

    arm: str
    source: str
    metrics_dir: str
    metrics: dict
    train_dir: Optional[str] = None
    seed: Optional[int] = None
    confusion: Optional[np.ndarray] = None
    per_image: Optional[PerImageStats] = None
    scalars: Optional[List[dict]] = None
    config_path: Optional[str] = None
    train_command: Optional[str] = None
    test_command: Optional[str] = None

    @property
    def label(self) -> str:
        if self.seed is not None:
            return f'seed {self.seed}'
        return osp.basename(osp.normpath(self.source)) or self.source

    @property
    def classes(self) -> List[str]:
        return list(self.metrics['classes'])

    def value(self, metric: str) -> float:
        v = self.metrics.get(metric)
        return math.nan if v is None else float(v)

    def class_iou(self) -> np.ndarray:
        return np.array([math.nan if self.metrics['per_class'][c]['IoU']
                         is None else self.metrics['per_class'][c]['IoU']
                         for c in self.classes])

    def gt_pixels(self) -> Optional[np.ndarray]:
        if self.confusion is not None:
            return self.confusion.sum(1).astype(np.float64)
        if self.metrics.get('gt_pixels') is not None:
            return np.asarray(self.metrics['gt_pixels'], dtype=np.float64)
        return None


def parse_run_specs(specs: Sequence[str]) -> List[Tuple[str, str]]:
    """``['NAME=DIR', ...]`` -> ``[(name, dir), ...]``, globs expanded.

    A pattern that matches nothing is kept as given, so that it is reported
    as missing instead of vanishing.
    """
    out = []
    for spec in specs:
        if '=' not in spec:
            raise ValueError(f'--run {spec!r}: expected NAME=DIR '
                             f'(e.g. baseline=work_dirs/ablation/baseline/'
                             f'seed0)')
        name, pattern = spec.split('=', 1)
        name = name.strip()
        if not name:
            raise ValueError(f'--run {spec!r}: empty NAME')
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) \
            else [pattern]
        out += [(name, m) for m in (matches or [pattern])]
    return out


def find_metrics_dir(folder: str) -> Optional[str]:
    """The folder holding metrics.json: DIR, DIR/eval, or newest below DIR."""
    for cand in (folder, osp.join(folder, 'eval')):
        if osp.isfile(osp.join(cand, METRICS_FILE)):
            return cand
    found = glob.glob(osp.join(folder, '**', METRICS_FILE), recursive=True)
    if not found:
        return None
    return osp.dirname(max(found, key=osp.getmtime))


def _scalar_files(train_dir: str) -> List[str]:
    return sorted(glob.glob(osp.join(train_dir, '*', 'vis_data',
                                     'scalars.json')))


def load_scalars(train_dir: str) -> List[dict]:
    """All records of a work dir's scalars.json files, resumed runs merged.

    Later files (newer timestamps) override earlier records of the same kind
    (training or validation) at the same step.
    """
    merged: Dict[Tuple[str, int], dict] = {}
    for path in _scalar_files(train_dir):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(rec, dict) or 'step' not in rec:
                    continue
                kind = 'val' if _VAL_KEYS & set(rec) and not any(
                    'loss' in k for k in rec) else 'train'
                merged[(kind, int(rec['step']))] = dict(rec, _kind=kind)
    return [merged[k] for k in sorted(merged, key=lambda k: (k[1], k[0]))]


def _find_train_dir(source: str, metrics_dir: str,
                    metrics: dict) -> Optional[str]:
    cands = [source]
    ckpt = metrics.get('checkpoint')
    if ckpt:
        cands.append(osp.dirname(ckpt))
    cands.append(osp.dirname(osp.normpath(metrics_dir)))
    for c in cands:
        if c and osp.isdir(c) and (_scalar_files(c) or osp.isfile(
                osp.join(c, RUN_RECORD_FILE)) or osp.isfile(
                    osp.join(c, 'last_checkpoint'))):
            return c
    return None


def _find_config(train_dir: str, record: dict) -> Optional[str]:
    top = sorted(glob.glob(osp.join(train_dir, '*.py')))
    want = record.get('config')
    if want:
        named = [p for p in top if osp.basename(p) == osp.basename(want)]
        if named:
            return named[0]
    if top:
        return top[0]
    dumps = sorted(glob.glob(osp.join(train_dir, '*', 'vis_data',
                                      'config.py')))
    return dumps[-1] if dumps else None


def _seed_of(record: dict, config_path: Optional[str],
             source: str) -> Optional[int]:
    if isinstance(record.get('seed'), int):
        return record['seed']
    if config_path:
        with open(config_path) as f:
            text = f.read()
        m = re.search(r'^randomness\s*=\s*dict\((.*?)\)\s*$', text,
                      re.M | re.S)
        if m:
            s = re.search(r'seed\s*=\s*(\d+)', m.group(1))
            if s:
                return int(s.group(1))
    m = re.search(r'seed[_-]?(\d+)', osp.basename(osp.normpath(source)))
    return int(m.group(1)) if m else None


def load_run(arm: str, source: str, notes: List[str]) -> Optional[Run]:
    """Read one run folder; problems go to ``notes``; None if unusable."""
    if not osp.isdir(source):
        notes.append(f'[{arm}] {source}: no such folder; run left out.')
        return None
    mdir = find_metrics_dir(source)
    if mdir is None:
        notes.append(
            f'[{arm}] {source}: no {METRICS_FILE} (looked in the folder, '
            f'its eval/ and below); evaluate it with `python tools/test.py '
            f'CONFIG CHECKPOINT --out {osp.join(source, "eval")}`. Run left '
            f'out.')
        return None
    try:
        metrics = load_metrics(mdir)
    except MetricsFileError as exc:
        notes.append(f'[{arm}] {exc}. Run left out.')
        return None
    run = Run(arm=arm, source=source, metrics_dir=mdir, metrics=metrics)
    cpath = osp.join(mdir, CONFUSION_FILE)
    if osp.isfile(cpath):
        conf = np.load(cpath)
        C = len(run.classes)
        if conf.shape == (C, C):
            run.confusion = conf
        else:
            notes.append(f'[{arm}] {cpath}: shape {conf.shape} does not match '
                         f'{C} classes; ignored.')
    ppath = osp.join(mdir, PER_IMAGE_FILE)
    if osp.isfile(ppath):
        try:
            run.per_image = PerImageStats.load(ppath)
        except (ValueError, OSError, KeyError) as exc:
            notes.append(f'[{arm}] {ppath}: unreadable ({exc}); no image '
                         f'bootstrap for this run.')
    else:
        notes.append(f'[{arm}] {mdir}: no {PER_IMAGE_FILE}; no image '
                     f'bootstrap for this run (re-run tools/test.py).')
    run.test_command = metrics.get('command')
    run.train_dir = _find_train_dir(source, mdir, metrics)
    record: dict = {}
    if run.train_dir:
        rpath = osp.join(run.train_dir, RUN_RECORD_FILE)
        if osp.isfile(rpath):
            try:
                with open(rpath) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                notes.append(f'[{arm}] {rpath}: unreadable; ignored.')
        run.config_path = _find_config(run.train_dir, record)
        run.train_command = record.get('train_command')
        run.test_command = record.get('test_command') or run.test_command
        scal = load_scalars(run.train_dir)
        if scal:
            run.scalars = scal
    if not run.scalars:
        where = run.train_dir or source
        notes.append(f'[{arm}] {where}: no training log '
                     f'(<work_dir>/<timestamp>/vis_data/scalars.json); '
                     f'training curves of this run left out.')
    run.seed = _seed_of(record, run.config_path, source)
    return run


# ---------------------------------------------------------------- analysis
@dataclass
class ArmStats:
    name: str
    runs: List[Run]
    t: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    boot: Optional[Dict[str, np.ndarray]] = None


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


@dataclass
class ReportResult:
    out_dir: str
    markdown: str
    html: str
    figures: List[str]
    left_out: List[str]
    arms: Dict[str, ArmStats]
    deltas: List[DeltaStats]
    baseline: Optional[str]

    def summary_table(self, metric: str = 'mIoU') -> str:
        """A short plain-text table for terminals."""
        rows = [('arm', 'runs', metric, '95% CI (seeds)',
                 '95% CI (images)', f'd{metric} vs ' + str(self.baseline),
                 'p (seeds)')]
        dmap = {d.arm: d for d in self.deltas if d.metric == metric}
        for name, a in self.arms.items():
            mean, half = a.t.get(metric, (math.nan, math.nan))
            lo, hi = (percentile_interval(a.boot[metric]) if a.boot else
                      (math.nan, math.nan))
            d = dmap.get(name)
            rows.append((name, str(len(a.runs)), _f(mean),
                         _pm(half), _ci(lo, hi),
                         _f(d.delta, sign=True) if d else '-',
                         _p(d.t_p) if d else '-'))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths))
                         for r in rows)


def _f(x: float, digits: int = 2, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return 'n/a'
    return f'{x:+.{digits}f}' if sign else f'{x:.{digits}f}'


def _pm(half: float) -> str:
    return 'n/a' if math.isnan(half) else f'±{half:.2f}'


def _ci(lo: float, hi: float) -> str:
    return 'n/a' if math.isnan(lo) else f'[{lo:.2f}, {hi:.2f}]'


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return 'n/a'
    return '<0.001' if p < 1e-3 else f'{p:.3f}'


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
            a.boot = bootstrap_runs([r.per_image.reorder(names)
                                     for r in a.runs], weights,
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


# ---------------------------------------------------------------- figures
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


def class_order(freq: np.ndarray) -> np.ndarray:
    """Class indices sorted by ground-truth pixel count, rarest first."""
    return np.argsort(freq, kind='stable')


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
    ax.set_title(f'Per-class IoU change, rarest class first (GT pixel share)',
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


# ---------------------------------------------------------------- document
class _Doc:
    """A tiny document model rendered to Markdown and to HTML."""

    def __init__(self):
        self.blocks: List[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(('h', level, text))

    def p(self, text: str):
        self.blocks.append(('p', text))

    def ul(self, items: Sequence[str]):
        self.blocks.append(('ul', list(items)))

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]]):
        self.blocks.append(('table', list(head), [list(r) for r in rows]))

    def img(self, path: str, alt: str):
        self.blocks.append(('img', path, alt))

    def code(self, text: str, summary: Optional[str] = None,
             link: Optional[str] = None):
        self.blocks.append(('code', text, summary, link))

    def markdown(self, out_dir: str) -> str:
        lines: List[str] = []
        for b in self.blocks:
            if b[0] == 'h':
                lines += ['#' * b[1] + ' ' + b[2], '']
            elif b[0] == 'p':
                lines += [b[1], '']
            elif b[0] == 'ul':
                lines += [f'- {x}' for x in b[1]] + ['']
            elif b[0] == 'table':
                esc = lambda s: str(s).replace('|', '\\|')  # noqa: E731
                lines.append('| ' + ' | '.join(map(esc, b[1])) + ' |')
                lines.append('|' + '|'.join('---' for _ in b[1]) + '|')
                lines += ['| ' + ' | '.join(map(esc, r)) + ' |'
                          for r in b[2]]
                lines.append('')
            elif b[0] == 'img':
                rel = osp.relpath(b[1], out_dir)
                lines += [f'![{b[2]}]({rel})', '']
            elif b[0] == 'code':
                text, summary, link = b[1], b[2], b[3]
                if summary:
                    lines.append(f'**{summary}**' + (
                        f' ([file]({osp.relpath(link, out_dir)}))'
                        if link else ''))
                    lines.append('')
                fence = '````' if '```' in text else '```'
                lines += [fence, text.rstrip('\n'), fence, '']
        return '\n'.join(lines)

    def html(self, title: str) -> str:
        e = html.escape
        parts = [
            '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
            f'<title>{e(title)}</title>',
            '<meta name="viewport" content="width=device-width, '
            'initial-scale=1">', f'<style>{_CSS}</style></head><body>'
        ]
        for b in self.blocks:
            if b[0] == 'h':
                parts.append(f'<h{b[1]}>{e(b[2])}</h{b[1]}>')
            elif b[0] == 'p':
                parts.append(f'<p>{_inline(b[1])}</p>')
            elif b[0] == 'ul':
                parts.append('<ul>' + ''.join(f'<li>{_inline(x)}</li>'
                                              for x in b[1]) + '</ul>')
            elif b[0] == 'table':
                head = ''.join(f'<th>{e(str(c))}</th>' for c in b[1])
                body = ''.join('<tr>' + ''.join(
                    f'<td>{e(str(c))}</td>' for c in r) + '</tr>'
                    for r in b[2])
                parts.append(f'<table><thead><tr>{head}</tr></thead>'
                             f'<tbody>{body}</tbody></table>')
            elif b[0] == 'img':
                with open(b[1], 'rb') as f:
                    data = base64.b64encode(f.read()).decode('ascii')
                parts.append(f'<figure><img alt="{e(b[2])}" '
                             f'src="data:image/png;base64,{data}">'
                             f'<figcaption>{e(b[2])}</figcaption></figure>')
            elif b[0] == 'code':
                text, summary = b[1], b[2]
                pre = f'<pre>{e(text)}</pre>'
                parts.append(f'<details><summary>{e(summary)}</summary>'
                             f'{pre}</details>' if summary else pre)
        parts.append(_IMG_CHECK)
        parts.append('</body></html>')
        return '\n'.join(parts)


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    out = html.escape(text)
    return re.sub(r'`([^`]+)`', r'<code>\1</code>', out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;
max-height:40em}code{background:#f3f3f3;padding:0 .2em}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
"""

# Marks <body data-images-loaded="k/n"> once the page has loaded, so a
# headless browser (tests) can tell that every embedded figure decoded.
_IMG_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
</script>"""


# ---------------------------------------------------------------- build
def _safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def build_report(run_specs: Sequence[Tuple[str, str]], out_dir: str,
                 baseline: Optional[str] = None, bootstrap: int = 1000,
                 seed: int = 0, level: float = 0.95,
                 title: str = 'segreg: with vs without the regularizer'
                 ) -> ReportResult:
    """Read the runs, compute the statistics, write the report folder.

    Args:
        run_specs: ``[(arm, folder), ...]``; several folders per arm = seeds.
        out_dir: Where report.md, report.html, figures/ and configs/ go.
        baseline: Arm the others are compared with (default: the first).
        bootstrap: Number of image resamples (0 disables the bootstrap).
        seed: Seed of the resampling.
        level: Confidence level of every interval.
        title: Report title.

    Raises:
        ReportError: If no run at all can be used.
    """
    notes: List[str] = []
    runs: List[Run] = []
    seen = set()
    for arm, folder in run_specs:
        run = load_run(arm, folder, notes)
        if run is None:
            continue
        key = osp.realpath(osp.join(run.metrics_dir, METRICS_FILE))
        if key in seen:
            notes.append(f'[{arm}] {folder}: same metrics as another run '
                         f'given; counted once.')
            continue
        seen.add(key)
        runs.append(run)
    if not runs:
        raise ReportError('no usable run:\n  ' + '\n  '.join(notes))
    if baseline is None:
        baseline = runs[0].arm
    stats, deltas, baseline, classes = analyse(runs, baseline, notes,
                                               bootstrap, seed, level)
    pct = f'{100 * level:g}%'

    fig_dir = osp.join(out_dir, 'figures')
    cfg_dir = osp.join(out_dir, 'configs')
    os.makedirs(fig_dir, exist_ok=True)
    os.makedirs(cfg_dir, exist_ok=True)
    # drop what an earlier report in this folder wrote (e.g. a removed arm)
    for stale in (glob.glob(osp.join(fig_dir, '*.png')) +
                  glob.glob(osp.join(cfg_dir, '*.py'))):
        os.remove(stale)
    figures: List[str] = []
    doc = _Doc()
    doc.h(1, title)
    doc.p(f'{sum(len(a.runs) for a in stats.values())} runs in '
          f'{len(stats)} arms; baseline: '
          f'{baseline if baseline else "none"}; {len(classes)} classes; '
          f'numbers in percent; {pct} intervals.')
    doc.h(2, 'Metric convention')
    doc.p(CONVENTION)

    # -- summary table
    doc.h(2, 'Summary per arm')
    doc.p(f'Mean over seeds ± half-width of the {pct} Student-t interval '
          f'over seeds (n/a with one seed). "mIoU CI (images)": {pct} '
          f'percentile interval of {bootstrap} bootstrap resamples of the '
          f'test images (the arm\'s mean over seeds, recomputed from '
          f'per-image class counts).')
    head = ['arm', 'runs', 'mIoU', f'mIoU CI (images)'] + \
        [m for m in SUMMARY_METRICS if m != 'mIoU']
    rows = []
    for name, a in stats.items():
        lo, hi = (percentile_interval(a.boot['mIoU'], level) if a.boot
                  else (math.nan, math.nan))
        cells = [name, str(len(a.runs)), _mean_pm(*a.t['mIoU']), _ci(lo, hi)]
        cells += [_mean_pm(*a.t[m]) for m in SUMMARY_METRICS if m != 'mIoU']
        rows.append(cells)
    doc.table(head, rows)
    doc.table(['arm', 'run', 'seed', 'mIoU', 'aAcc', 'mAcc', 'mFscore',
               'images', 'metrics folder'],
              [[name, r.label, '-' if r.seed is None else str(r.seed),
                _f(r.value('mIoU')), _f(r.value('aAcc')),
                _f(r.value('mAcc')), _f(r.value('mFscore')),
                str(r.metrics.get('num_images')), r.metrics_dir]
               for name, a in stats.items() for r in a.runs])
    figures.append(fig_summary(stats, osp.join(fig_dir, 'summary.png')))
    doc.img(figures[-1], 'Summary metrics per arm')

    # -- deltas
    if baseline is not None and deltas:
        doc.h(2, f'Difference vs {baseline}')
        doc.p(f'Difference of the arm means (arm - {baseline}, percentage '
              f'points). Seeds: paired t-test over seeds with the same seed '
              f'(Welch\'s t-test when seeds cannot be paired). Images: '
              f'{pct} percentile interval and two-sided p-value of the '
              f'difference over {bootstrap} resamples of the test images, '
              f'the same resamples for both arms.')
        doc.table(['arm', 'metric', 'delta', f'{pct} CI (seeds)',
                   'p (seeds)', 'test', f'{pct} CI (images)', 'p (images)'],
                  [[d.arm, d.metric, _f(d.delta, sign=True),
                    _ci(d.delta - d.t_half, d.delta + d.t_half)
                    if not math.isnan(d.t_half) else 'n/a', _p(d.t_p),
                    d.test, _ci(*d.boot_ci), _p(d.boot_p)] for d in deltas])

    # -- per-class
    base_runs = stats[baseline].runs if baseline else next(
        iter(stats.values())).runs
    freqs = [r.gt_pixels() for r in base_runs if r.gt_pixels() is not None]
    freq = (np.mean(freqs, axis=0) if freqs else
            np.zeros(len(classes)))
    if not freqs:
        notes.append('no ground-truth pixel counts (confusion.npy or '
                     'gt_pixels); per-class charts in the given class order.')
    order = class_order(freq) if freqs else np.arange(len(classes))
    share = 100.0 * freq / max(freq.sum(), 1.0)
    mean_iou = {n: _nanmean_rows(np.stack([r.class_iou() for r in a.runs]))
                for n, a in stats.items()}
    doc.h(2, 'Per-class IoU')
    doc.p('Classes sorted by ground-truth pixel share in the baseline\'s '
          'test set, rarest first (metric losses are expected to matter '
          'most there). IoU is the mean over seeds; n/a: class absent from '
          'ground truth and prediction in every run.')
    arm_names = list(stats)
    head = ['class', 'GT share %'] + [f'IoU {n}' for n in arm_names]
    if baseline:
        head += [f'd {n}' for n in arm_names if n != baseline]
    rows = []
    for i in order:
        row = [classes[i], f'{share[i]:.3g}']
        row += [_f(mean_iou[n][i]) for n in arm_names]
        if baseline:
            row += [_f(mean_iou[n][i] - mean_iou[baseline][i], sign=True)
                    for n in arm_names if n != baseline]
        rows.append(row)
    doc.table(head, rows)
    if baseline:
        for n in arm_names:
            if n == baseline:
                continue
            path = osp.join(fig_dir, f'class_delta_{_safe(n)}.png')
            figures.append(fig_class_delta(
                classes, freq, mean_iou[n] - mean_iou[baseline], n,
                baseline, path))
            doc.img(path, f'Per-class IoU change of {n} vs {baseline}, '
                    f'rarest class first')

    # -- curves
    doc.h(2, 'Training curves')
    loss_keys, val_keys, other_keys = _curve_keys(stats)
    if not (loss_keys or val_keys or other_keys):
        doc.p('No training logs found (see "Left out").')
    else:
        doc.p('From each run\'s `vis_data/scalars.json` (mmengine); one '
              'line per seed, colour = arm; training scalars smoothed with '
              'a moving average of 1/50 of the run.')
    for keys, kind, name, title_ in (
            (loss_keys, 'train', 'curves_loss.png', 'Loss terms'),
            (val_keys[:4] if 'mIoU' not in val_keys else
             ['mIoU'] + [k for k in val_keys if k != 'mIoU'][:3], 'val',
             'curves_val.png', 'Validation metrics over iterations'),
            (other_keys, 'train', 'curves_other.png',
             'Other logged scalars (dual variables, lr, training accuracy)')):
        path = fig_curves(stats, keys, kind, title_, osp.join(fig_dir, name))
        if path:
            figures.append(path)
            doc.img(path, title_)
            if len(keys) > 24:
                notes.append(f'{title_}: {len(keys)} scalars, only the '
                             f'first 24 plotted.')

    # -- configs and commands
    doc.h(2, 'Configs and commands')
    for name, a in stats.items():
        doc.h(3, name)
        for r in a.runs:
            items = [f'metrics: `{r.metrics_dir}`',
                     f'work dir: `{r.train_dir or "not found"}`',
                     'train command: ' + (f'`{r.train_command}`' if
                                          r.train_command else
                                          'not recorded (runs started by '
                                          'tools/ablate.py record it)'),
                     'test command: ' + (f'`{r.test_command}`' if
                                         r.test_command else 'not recorded')]
            doc.p(f'{r.label}:')
            doc.ul(items)
            if r.config_path and osp.isfile(r.config_path):
                dst = osp.join(cfg_dir, f'{_safe(name)}__{_safe(r.label)}.py')
                shutil.copyfile(r.config_path, dst)
                with open(r.config_path) as f:
                    text = f.read()
                doc.code(text, f'config of {name}, {r.label} '
                         f'({osp.basename(r.config_path)})', link=dst)
            else:
                notes.append(f'[{name}] {r.label}: no config dump found in '
                             f'{r.train_dir or r.source}.')

    # -- left out
    doc.h(2, 'Left out')
    doc.ul(notes if notes else ['nothing: every run and file was usable.'])

    os.makedirs(out_dir, exist_ok=True)
    md = doc.markdown(out_dir)
    page = doc.html(title)
    with open(osp.join(out_dir, 'report.md'), 'w') as f:
        f.write(md)
    with open(osp.join(out_dir, 'report.html'), 'w') as f:
        f.write(page)
    result = ReportResult(out_dir, md, page, figures, notes, stats, deltas,
                          baseline)
    _write_summary_json(result, level, osp.join(out_dir, 'summary.json'))
    return result


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN where a column is all NaN."""
    n = np.sum(~np.isnan(x), axis=0)
    s = np.nansum(x, axis=0)
    return np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)


def _mean_pm(mean: float, half: float) -> str:
    if math.isnan(mean):
        return 'n/a'
    return f'{mean:.2f}' if math.isnan(half) else f'{mean:.2f} ± {half:.2f}'


def _write_summary_json(res: ReportResult, level: float, path: str) -> None:
    def num(x):
        return None if x is None or (isinstance(x, float) and
                                     math.isnan(x)) else float(x)

    arms = {}
    for n, a in res.arms.items():
        arms[n] = {
            'runs': [r.metrics_dir for r in a.runs],
            'seeds': [r.seed for r in a.runs],
            'metrics': {m: {'mean': num(a.t[m][0]),
                            't_half_width': num(a.t[m][1]),
                            'bootstrap_ci': ([num(v) for v in
                                              percentile_interval(
                                                  a.boot[m], level)]
                                             if a.boot else None)}
                        for m in SUMMARY_METRICS}}
    out = {'baseline': res.baseline, 'level': level, 'arms': arms,
           'deltas': [{'arm': d.arm, 'metric': d.metric,
                       'delta': num(d.delta), 't_half_width': num(d.t_half),
                       'p_seeds': num(d.t_p), 'test': d.test,
                       'bootstrap_ci': [num(v) for v in d.boot_ci],
                       'p_images': num(d.boot_p)} for d in res.deltas],
           'figures': [osp.relpath(f, res.out_dir) for f in res.figures],
           'left_out': res.left_out}
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
