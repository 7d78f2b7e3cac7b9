"""``build_report``: read the runs, compute, write the report folder.

The sections of the page live in :mod:`.sections`; this module loads the
runs, analyses them, calls the sections in order and writes report.md,
report.html and summary.json (:class:`ReportResult` holds what it wrote).
"""
from __future__ import annotations

import glob
import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..functional import CONVENTION, SUMMARY_METRICS
from ..metrics_file import METRICS_FILE
from ..stats import percentile_interval
from .analysis import (BIN_NAMES, ArmStats, BinStats, DeltaStats, analyse,
                       bin_stats, frequency_bins)
from .document import _ci, Document, _f, _mean_pm, _p, _pm
from .runs import ReportError, Run, load_class_pixels, load_run
from .sections import (MAX_HEATMAP_CLASSES, ReportContext, section_configs,
                       section_curves, section_deltas, section_grid,
                       section_per_class, section_summary)

__all__ = ['MAX_HEATMAP_CLASSES', 'ReportResult', 'build_report']


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
    bins: Dict[str, BinStats] = field(default_factory=dict)
    bin_classes: List[List[str]] = field(default_factory=list)
    bin_source: str = ''
    grid: List[dict] = field(default_factory=list)
    #: The small PNG tiles of the qualitative grid (not in ``figures``).
    tiles: List[str] = field(default_factory=list)

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
        table = _plain_table(rows)
        if self.bins:
            rows = [('mIoU by class frequency',) + tuple(
                f'{n} ({len(c)})' for n, c in zip(BIN_NAMES,
                                                   self.bin_classes))]
            for name, b in self.bins.items():
                rows.append((name, ) + tuple(_mean_pm(*t) for t in b.t))
            table += '\n\n' + _plain_table(rows)
        return table


def _plain_table(rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(r, widths))
                     for r in rows)


# ---------------------------------------------------------------- build
def _load_runs(run_specs: Sequence[Tuple[str, str]],
               notes: List[str]) -> List[Run]:
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
    return runs


def _class_frequencies(ctx: ReportContext,
                       train_class_pixels: Optional[str]):
    """Test GT pixels (per-class table) and the bins' frequency source."""
    freqs = [r.gt_pixels() for r in ctx.base_runs
             if r.gt_pixels() is not None]
    if freqs:
        ctx.freq = np.mean(freqs, axis=0)
    else:
        ctx.notes.append('no ground-truth pixel counts (confusion.npy or '
                         'gt_pixels); per-class charts in the given class '
                         'order and no frequency bins.')
    train = None
    if train_class_pixels:
        train = load_class_pixels(train_class_pixels, ctx.classes,
                                  ctx.notes)
    if train is not None:
        ctx.bin_source = ('training pixel share '
                          f'(`{osp.basename(train_class_pixels)}`)')
        return train
    if ctx.freq is None:
        return None
    ctx.bin_source = 'the test set\'s ground-truth pixel share'
    ctx.notes.append('frequency bins use the test set\'s ground-truth pixel '
                     'share: no training class counts given (tools/ablate.py'
                     ' writes them with tools/check_dataset.py --split train'
                     ' --json; tools/compare.py --train-class-pixels FILE).')
    return ctx.freq


def build_report(run_specs: Sequence[Tuple[str, str]], out_dir: str,
                 baseline: Optional[str] = None, bootstrap: int = 1000,
                 seed: int = 0, level: float = 0.95,
                 title: str = 'segreg: with vs without the regularizer',
                 train_class_pixels: Optional[str] = None,
                 max_grid_images: int = 12) -> ReportResult:
    """Read the runs, compute the statistics, write the report folder.

    Args:
        run_specs: ``[(arm, folder), ...]``; several folders per arm = seeds.
        out_dir: Where report.md, report.html, figures/ and configs/ go.
        baseline: Arm the others are compared with (default: the first).
        bootstrap: Number of image resamples (0 disables the bootstrap).
        seed: Seed of the resampling.
        level: Confidence level of every interval.
        title: Report title.
        train_class_pixels: JSON with the training set's pixels per class
            (``tools/check_dataset.py --split train --json`` output, or
            ``{class: pixels}``) for the frequency bins; default: the test
            set's ground truth, with a note.
        max_grid_images: Cap on the images of the qualitative grid.

    Raises:
        ReportError: If no run at all can be used.
    """
    notes: List[str] = []
    runs = _load_runs(run_specs, notes)
    if baseline is None:
        baseline = runs[0].arm
    stats, deltas, baseline, classes = analyse(runs, baseline, notes,
                                               bootstrap, seed, level)
    fig_dir = osp.join(out_dir, 'figures')
    cfg_dir = osp.join(out_dir, 'configs')
    os.makedirs(fig_dir, exist_ok=True)
    os.makedirs(cfg_dir, exist_ok=True)
    # drop what an earlier report in this folder wrote (e.g. a removed arm)
    for stale in (glob.glob(osp.join(fig_dir, '*.png')) +
                  glob.glob(osp.join(fig_dir, 'grid', '*.png')) +
                  glob.glob(osp.join(cfg_dir, '*.py'))):
        os.remove(stale)
    ctx = ReportContext(stats, deltas, baseline, classes, notes, level,
                        bootstrap, fig_dir, cfg_dir)
    bin_freq = _class_frequencies(ctx, train_class_pixels)
    if bin_freq is not None:
        ctx.bin_groups = frequency_bins(bin_freq)
        ctx.bins = bin_stats(stats, ctx.bin_groups, baseline, level)

    doc = Document()
    doc.h(1, title)
    doc.p(f'{sum(len(a.runs) for a in stats.values())} runs in '
          f'{len(stats)} arms; baseline: '
          f'{baseline if baseline else "none"}; {len(classes)} classes; '
          f'numbers in percent; {ctx.pct} intervals.')
    doc.h(2, 'Metric convention')
    doc.p(CONVENTION)
    section_summary(doc, ctx)
    section_deltas(doc, ctx)
    section_grid(doc, ctx, max_images=max_grid_images)
    section_per_class(doc, ctx)
    section_curves(doc, ctx)
    section_configs(doc, ctx)
    doc.h(2, 'Left out')
    doc.ul(notes if notes else ['nothing: every run and file was usable.'])

    os.makedirs(out_dir, exist_ok=True)
    md = doc.markdown(out_dir)
    page = doc.html(title)
    with open(osp.join(out_dir, 'report.md'), 'w') as f:
        f.write(md)
    with open(osp.join(out_dir, 'report.html'), 'w') as f:
        f.write(page)
    result = ReportResult(out_dir, md, page, ctx.figures, notes, stats,
                          deltas, baseline, ctx.bins,
                          [[classes[i] for i in g] for g in ctx.bin_groups],
                          ctx.bin_source, ctx.grid, ctx.tiles)
    _write_summary_json(result, level, osp.join(out_dir, 'summary.json'))
    return result


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
    bins = {}
    for n, b in res.bins.items():
        bins[n] = [{'bin': BIN_NAMES[j], 'classes': res.bin_classes[j],
                    'mean': num(b.t[j][0]), 't_half_width': num(b.t[j][1]),
                    'bootstrap_ci': ([num(v) for v in percentile_interval(
                        b.boot[j], level)] if b.boot is not None else None),
                    'delta': num(b.delta[j][0]) if b.delta else None,
                    'delta_t_half_width': (num(b.delta[j][1]) if b.delta
                                           else None)}
                   for j in range(len(res.bin_classes))]
    out = {'baseline': res.baseline, 'level': level, 'arms': arms,
           'deltas': [{'arm': d.arm, 'metric': d.metric,
                       'delta': num(d.delta), 't_half_width': num(d.t_half),
                       'p_seeds': num(d.t_p), 'test': d.test,
                       'bootstrap_ci': [num(v) for v in d.boot_ci],
                       'p_images': num(d.boot_p)} for d in res.deltas],
           'frequency_bins': {'source': res.bin_source, 'arms': bins},
           'grid': [dict(g, miou={k: num(v) for k, v in g['miou'].items()})
                    for g in res.grid],
           'figures': [osp.relpath(f, res.out_dir) for f in res.figures],
           'left_out': res.left_out}
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
