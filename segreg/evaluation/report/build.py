"""``build_report``: read the runs, compute, write the report folder.

Each section of the report is one function that appends blocks to the
document (and figures to ``ctx.figures``); :func:`build_report` only loads,
analyses and calls them in order.
"""
from __future__ import annotations

import glob
import json
import math
import os
import os.path as osp
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..functional import CONVENTION, SUMMARY_METRICS
from ..metrics_file import METRICS_FILE
from ..stats import percentile_interval
from .analysis import (BIN_NAMES, ArmStats, BinStats, DeltaStats, analyse,
                       arm_confusion, bin_stats, class_order,
                       frequency_bins, nanmean_rows, row_normalised,
                       top_confusions)
from .document import _ci, Document, _f, _mean_pm, _p, _pm, _safe
from .figures import fig_class_delta, fig_confusion, fig_curves, fig_summary
from .figures import _curve_keys
from .qualitative import (build_grid, choose_images, grid_runs,
                          per_image_miou)
from .runs import ReportError, Run, load_class_pixels, load_run

#: Above this many classes the confusion matrix becomes a table.
MAX_HEATMAP_CLASSES = 40


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


@dataclass
class _Ctx:
    """What every section reads."""

    stats: Dict[str, ArmStats]
    deltas: List[DeltaStats]
    baseline: Optional[str]
    classes: List[str]
    notes: List[str]
    level: float
    bootstrap: int
    fig_dir: str
    cfg_dir: str
    figures: List[str] = field(default_factory=list)
    freq: Optional[np.ndarray] = None       # test GT pixels per class
    bins: Dict[str, BinStats] = field(default_factory=dict)
    bin_groups: List[np.ndarray] = field(default_factory=list)
    bin_source: str = ''
    grid: List[dict] = field(default_factory=list)
    tiles: List[str] = field(default_factory=list)

    @property
    def pct(self) -> str:
        return f'{100 * self.level:g}%'

    @property
    def base_runs(self) -> List[Run]:
        return (self.stats[self.baseline].runs if self.baseline else
                next(iter(self.stats.values())).runs)


# ---------------------------------------------------------------- sections
def _bins_table(doc: Document, ctx: _Ctx) -> None:
    sizes = [len(g) for g in ctx.bin_groups]
    doc.p(f'**mIoU by class frequency.** Classes sorted by '
          f'{ctx.bin_source} and cut into thirds of '
          f'{"/".join(map(str, sizes))} classes (rarest first); a third\'s '
          f'mIoU is the mean IoU of its scored classes. Mean over seeds ± '
          f'{ctx.pct} t half-width; in brackets the {ctx.pct} image-'
          f'bootstrap interval. Rows "d": difference to {ctx.baseline} '
          f'(paired over seeds; brackets: paired image bootstrap).')
    head = ['arm'] + [f'{n} ({k})' for n, k in zip(BIN_NAMES, sizes)]
    rows = []
    for name, b in ctx.bins.items():
        cells = [name]
        for j in range(len(ctx.bin_groups)):
            boot = (' ' + _ci(*percentile_interval(b.boot[j], ctx.level))
                    if b.boot is not None else '')
            cells.append(_mean_pm(*b.t[j]) + boot)
        rows.append(cells)
        if b.delta is not None:
            cells = [f'd {name}']
            for j, (d, half, p) in enumerate(b.delta):
                boot = (' ' + _ci(*b.delta_boot_ci[j]) if b.delta_boot_ci
                        else '')
                cells.append(_f(d, sign=True) +
                             ('' if math.isnan(half) else f' ± {half:.2f}') +
                             boot)
            rows.append(cells)
    doc.table(head, rows)
    doc.p('Classes per third: ' + '; '.join(
        f'{n}: ' + ', '.join(ctx.classes[i] for i in g)
        for n, g in zip(BIN_NAMES, ctx.bin_groups)) + '.')


def section_summary(doc: Document, ctx: _Ctx) -> None:
    pct, stats = ctx.pct, ctx.stats
    doc.h(2, 'Summary per arm')
    doc.p(f'Mean over seeds ± half-width of the {pct} Student-t interval '
          f'over seeds (n/a with one seed). "mIoU CI (images)": {pct} '
          f'percentile interval of {ctx.bootstrap} bootstrap resamples of '
          f'the test images (the arm\'s mean over seeds, recomputed from '
          f'per-image class counts).')
    head = ['arm', 'runs', 'mIoU', 'mIoU CI (images)'] + \
        [m for m in SUMMARY_METRICS if m != 'mIoU']
    rows = []
    for name, a in stats.items():
        lo, hi = (percentile_interval(a.boot['mIoU'], ctx.level) if a.boot
                  else (math.nan, math.nan))
        cells = [name, str(len(a.runs)), _mean_pm(*a.t['mIoU']), _ci(lo, hi)]
        cells += [_mean_pm(*a.t[m]) for m in SUMMARY_METRICS if m != 'mIoU']
        rows.append(cells)
    doc.table(head, rows)
    if ctx.bins:
        _bins_table(doc, ctx)
    doc.table(['arm', 'run', 'seed', 'mIoU', 'aAcc', 'mAcc', 'mFscore',
               'images', 'metrics folder'],
              [[name, r.label, '-' if r.seed is None else str(r.seed),
                _f(r.value('mIoU')), _f(r.value('aAcc')),
                _f(r.value('mAcc')), _f(r.value('mFscore')),
                str(r.metrics.get('num_images')), r.metrics_dir]
               for name, a in stats.items() for r in a.runs])
    ctx.figures.append(fig_summary(stats, osp.join(ctx.fig_dir,
                                                   'summary.png')))
    doc.img(ctx.figures[-1], 'Summary metrics per arm')


def section_deltas(doc: Document, ctx: _Ctx) -> None:
    if ctx.baseline is None or not ctx.deltas:
        return
    pct = ctx.pct
    doc.h(2, f'Difference vs {ctx.baseline}')
    doc.p(f'Difference of the arm means (arm - {ctx.baseline}, percentage '
          f'points). Seeds: paired t-test over seeds with the same seed '
          f'(Welch\'s t-test when seeds cannot be paired). Images: '
          f'{pct} percentile interval and two-sided p-value of the '
          f'difference over {ctx.bootstrap} resamples of the test images, '
          f'the same resamples for both arms.')
    doc.table(['arm', 'metric', 'delta', f'{pct} CI (seeds)',
               'p (seeds)', 'test', f'{pct} CI (images)', 'p (images)'],
              [[d.arm, d.metric, _f(d.delta, sign=True),
                _ci(d.delta - d.t_half, d.delta + d.t_half)
                if not math.isnan(d.t_half) else 'n/a', _p(d.t_p),
                d.test, _ci(*d.boot_ci), _p(d.boot_p)] for d in ctx.deltas])


def section_grid(doc: Document, ctx: _Ctx, per_direction: int = 2,
                 random_count: int = 2, max_images: int = 12) -> None:
    """Image | ground truth | baseline | arms, for images chosen by rule."""
    if ctx.baseline is None:
        return
    pick = grid_runs(ctx.stats, ctx.baseline, ctx.notes)
    if pick is None:
        return
    base = pick[ctx.baseline]
    if base.per_image is None:
        ctx.notes.append('qualitative grid left out: the baseline run with '
                         'predictions has no per_image.npz.')
        return
    names = base.per_image.names.tolist()
    scores = {ctx.baseline: 100.0 * per_image_miou(base.per_image)}
    arm_idx = {}
    for n, r in pick.items():
        if n == ctx.baseline:
            continue
        if r.per_image is None or sorted(r.per_image.names.tolist()) != \
                sorted(names):
            ctx.notes.append(f'[{n}] per-image counts missing or on other '
                             f'images; not in the qualitative grid.')
            continue
        scores[n] = 100.0 * per_image_miou(r.per_image.reorder(names))
        arm_idx[n] = r.preds
    arms = {n: v for n, v in scores.items() if n != ctx.baseline}
    choices = [c for c in choose_images(
        names, scores[ctx.baseline], arms, per_direction, random_count,
        max_images) if c.name in base.preds.images]
    doc.h(2, 'Qualitative comparison')
    seeds = ', '.join(f'{n}: {r.label}' for n, r in pick.items())
    doc.p(f'Validation images chosen by a fixed rule, from the runs whose '
          f'predictions were saved ({seeds}): per-image mIoU is the mean '
          f'IoU over the classes in the image\'s ground truth or '
          f'prediction; for each arm the {per_direction} images with the '
          f'largest gain over {ctx.baseline}, then the {per_direction} with '
          f'the largest loss, then {random_count} images drawn at random '
          f'(seed 0) from the rest; at most {max_images}. Colours: the '
          f'dataset palette; black: ignored pixels. Tiles are downscaled to '
          f'160 px.')
    if not choices:
        doc.p('No image to show (no per-image counts in common).')
        return
    miou = {n: dict(zip(names, v.tolist())) for n, v in scores.items()}
    rows = build_grid(choices, ctx.baseline, base.preds, arm_idx, miou,
                      osp.join(ctx.fig_dir, 'grid'), ctx.notes)
    head = ['image', 'ground truth', ctx.baseline] + list(arm_idx)
    doc.grid(head, [r.cells for r in rows], [r.reason for r in rows],
             [r.legend for r in rows])
    ctx.tiles += [p for r in rows for p, _ in r.cells]
    ctx.grid = [dict(image=r.name, reason=r.reason,
                     miou={n: miou[n][r.name] for n in scores})
                for r in rows]


def section_per_class(doc: Document, ctx: _Ctx) -> None:
    classes, stats, baseline = ctx.classes, ctx.stats, ctx.baseline
    freq = ctx.freq if ctx.freq is not None else np.zeros(len(classes))
    order = class_order(freq) if ctx.freq is not None else \
        np.arange(len(classes))
    share = 100.0 * freq / max(freq.sum(), 1.0)
    mean_iou = {n: nanmean_rows(np.stack([r.class_iou() for r in a.runs]))
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
            path = osp.join(ctx.fig_dir, f'class_delta_{_safe(n)}.png')
            ctx.figures.append(fig_class_delta(
                classes, freq, mean_iou[n] - mean_iou[baseline], n,
                baseline, path))
            doc.img(path, f'Per-class IoU change of {n} vs {baseline}, '
                    f'rarest class first')
    section_confusion(doc, ctx, order)


def section_confusion(doc: Document, ctx: _Ctx, order: np.ndarray) -> None:
    """Row-normalised confusion of the baseline and each arm's change."""
    base_name = ctx.baseline or next(iter(ctx.stats))
    mats = {}
    for n, a in ctx.stats.items():
        conf = arm_confusion(a.runs)
        if conf is None:
            ctx.notes.append(f'[{n}] a run has no confusion.npy; no '
                             f'confusion matrix for this arm.')
        else:
            mats[n] = row_normalised(conf)
    if base_name not in mats:
        return
    base = mats[base_name]
    others = {n: m for n, m in mats.items() if n != base_name}
    doc.h(2, 'Confusion')
    C = len(ctx.classes)
    if C <= MAX_HEATMAP_CLASSES:
        doc.p(f'Row-normalised confusion matrices (confusion.npy summed '
              f'over the seeds of an arm): row = ground-truth class, '
              f'column = predicted class, each row in % of that class\'s '
              f'pixels; classes in the order of the per-class table (rarest '
              f'first); grey: class absent from the ground truth. The '
              f'difference maps show arm - {base_name} in percentage '
              f'points: blue on the diagonal and red off it means the arm '
              f'labels more pixels correctly.')
        labels = [ctx.classes[i] for i in order]
        sel = np.ix_(order, order)
        path = fig_confusion(base[sel], labels,
                             f'{base_name}: row-normalised confusion (%)',
                             osp.join(ctx.fig_dir, 'confusion_'
                                      f'{_safe(base_name)}.png'))
        ctx.figures.append(path)
        doc.img(path, f'Confusion matrix of {base_name}, row-normalised')
        for n, m in others.items():
            path = fig_confusion((m - base)[sel], labels,
                                 f'{n} - {base_name} (percentage points)',
                                 osp.join(ctx.fig_dir, 'confusion_delta_'
                                          f'{_safe(n)}.png'),
                                 diverging=True)
            ctx.figures.append(path)
            doc.img(path, f'Confusion change of {n} vs {base_name}')
        return
    cells = top_confusions(base, others)
    doc.p(f'{C} classes: too many for a readable matrix. The '
          f'{len(cells)} largest confusions instead (a ground-truth class\'s '
          f'pixels predicted as another class, in % of the ground-truth '
          f'class; largest in {base_name} or any arm first; confusion.npy '
          f'summed over the seeds of each arm).')
    head = ['ground truth', 'predicted as', base_name] + \
        [h for n in others for h in (n, f'd {n}')]
    rows = []
    for g, p in cells:
        row = [ctx.classes[g], ctx.classes[p], _f(100 * base[g, p])]
        for m in others.values():
            row += [_f(100 * m[g, p]), _f(100 * (m[g, p] - base[g, p]),
                                          sign=True)]
        rows.append(row)
    doc.table(head, rows)


def section_curves(doc: Document, ctx: _Ctx) -> None:
    doc.h(2, 'Training curves')
    loss_keys, val_keys, other_keys = _curve_keys(ctx.stats)
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
        path = fig_curves(ctx.stats, keys, kind, title_,
                          osp.join(ctx.fig_dir, name))
        if path:
            ctx.figures.append(path)
            doc.img(path, title_)
            if len(keys) > 24:
                ctx.notes.append(f'{title_}: {len(keys)} scalars, only the '
                                 f'first 24 plotted.')


def section_configs(doc: Document, ctx: _Ctx) -> None:
    doc.h(2, 'Configs and commands')
    for name, a in ctx.stats.items():
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
                dst = osp.join(ctx.cfg_dir,
                               f'{_safe(name)}__{_safe(r.label)}.py')
                shutil.copyfile(r.config_path, dst)
                with open(r.config_path) as f:
                    text = f.read()
                doc.code(text, f'config of {name}, {r.label} '
                         f'({osp.basename(r.config_path)})', link=dst)
            else:
                ctx.notes.append(f'[{name}] {r.label}: no config dump found '
                                 f'in {r.train_dir or r.source}.')


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


def _class_frequencies(ctx: _Ctx, train_class_pixels: Optional[str]):
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
    ctx = _Ctx(stats, deltas, baseline, classes, notes, level, bootstrap,
               fig_dir, cfg_dir)
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
