"""The sections of the comparison report.

Each section is one function ``section_x(doc, ctx)`` that appends blocks to
the :class:`~.document.Document` and the paths of the figures it draws to
``ctx.figures``; :func:`.build.build_report` loads and analyses the runs,
fills a :class:`ReportContext` and calls the sections in order.
"""
from __future__ import annotations

import math
import os.path as osp
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..functional import SUMMARY_METRICS
from ..stats import percentile_interval
from .analysis import (BIN_NAMES, ArmStats, BinStats, DeltaStats,
                       arm_confusion, class_order, nanmean_rows,
                       row_normalised, top_confusions)
from .document import _ci, Document, _f, _mean_pm, _p, _safe
from .figures import fig_class_delta, fig_confusion, fig_curves, fig_summary
from .figures import _curve_keys
from .qualitative import (build_grid, choose_images, grid_runs,
                          per_image_miou)
from .runs import Run

#: Above this many classes the confusion matrix becomes a table.
MAX_HEATMAP_CLASSES = 40


@dataclass
class ReportContext:
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


def _bins_table(doc: Document, ctx: ReportContext) -> None:
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


def section_summary(doc: Document, ctx: ReportContext) -> None:
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


def section_deltas(doc: Document, ctx: ReportContext) -> None:
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


def section_grid(doc: Document, ctx: ReportContext, per_direction: int = 2,
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


def section_per_class(doc: Document, ctx: ReportContext) -> None:
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


def section_confusion(doc: Document, ctx: ReportContext,
                      order: np.ndarray) -> None:
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


def section_curves(doc: Document, ctx: ReportContext) -> None:
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


def section_configs(doc: Document, ctx: ReportContext) -> None:
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
