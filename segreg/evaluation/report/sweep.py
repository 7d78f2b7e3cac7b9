"""The batch-size sweep: mIoU and rare-third mIoU against the batch.

Input: one study root per batch setting (``ROOT/ARM/seedS`` run folders, as
``tools/ablate.py --batch B --ranks R`` lays them out): the same arms
trained at one batch size each, with the images seen held equal. For every
arm and batch :func:`summarise` computes the mean over seeds with its 95%
t-interval, the paired difference to the baseline arm at the same batch, and
the drop from the largest batch to each smaller one (Welch interval: the
runs of two batches are different trainings), for mIoU, aAcc and the mIoU of
the rarest and of the most frequent third of the classes (by training pixel
share, as the report's frequency bins). The question it is built to answer:
does the dataset-level form lose less as the batch shrinks than the
per-batch surrogates?

:func:`write_sweep` writes, into one folder, ``batch_sweep.md`` and
``batch_sweep.html`` (the same tables and figure; the HTML embeds the figure
and opens offline, as the comparison report), ``batch_sweep.json`` (every
number) and ``batch_sweep.png`` (mIoU and rare-third mIoU, mean and interval
per arm against the batch; skipped with a note without matplotlib).

Batch labels: ``'B'`` (B images on one process) or ``'BxR'`` (B images per
process on R processes).
"""
from __future__ import annotations

import glob
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..stats import paired_t, t_interval, welch_t
from .analysis import frequency_bins
from .document import Document
from .runs import CLASS_PIXELS_FILE, load_class_pixels, load_run

#: metric key -> its name in the tables and the figure
METRIC_NAMES = {'mIoU': 'mIoU', 'rare': 'rare-third mIoU',
                'frequent': 'frequent-third mIoU', 'aAcc': 'aAcc'}
#: the metrics drawn; the tables hold them all
FIGURE_METRICS = ('mIoU', 'rare')


def parse_batch_label(label: str) -> Tuple[int, int]:
    """Images per process and processes of a batch label.

    Args:
        label: ``'8'`` or ``'2x4'`` (batch x ranks).

    Returns:
        ``(batch, ranks)``: ``'8'`` -> (8, 1), ``'2x4'`` -> (2, 4).

    Raises:
        ValueError: If a part of the label is not an integer.
    """
    batch, *ranks = (int(part) for part in label.split('x'))
    return batch, math.prod(ranks)


def images_per_step(label: str) -> int:
    """The global batch of a label: ``'8'`` -> 8, ``'2x4'`` -> 8."""
    batch, ranks = parse_batch_label(label)
    return batch * ranks


def is_multi_process(label: str) -> bool:
    """``'BxR'`` with ``R > 1``: a multi-process setting."""
    return parse_batch_label(label)[1] > 1


def arm_values(root: str, arm: str, notes: List[str],
               bins: Optional[List[np.ndarray]] = None
               ) -> Dict[int, Dict[str, float]]:
    """The metrics of the evaluated runs of one arm in one study root.

    Args:
        root: The study root (``ROOT/ARM/seedS`` run folders).
        arm: The arm's folder name.
        notes: Runs that cannot be used are described here.
        bins: Class indices of the frequency thirds (rarest first), or None.

    Returns:
        ``{seed: {metric: value}}``: mIoU, aAcc and, with ``bins``, the
        rare- and frequent-third mIoU (percent).
    """
    out = {}
    for folder in sorted(glob.glob(osp.join(root, arm, 'seed*'))):
        run = load_run(arm, folder, notes)
        if run is None:
            continue
        row = {'mIoU': run.value('mIoU'), 'aAcc': run.value('aAcc')}
        if bins is not None:
            for key, idx in (('rare', bins[0]), ('frequent', bins[-1])):
                iou = run.class_iou()[idx]
                row[key] = float(np.nanmean(iou)) \
                    if np.isfinite(iou).any() else math.nan
        seed = run.seed if run.seed is not None else len(out)
        out[seed] = row
    return out


def _rare_bins(roots: Sequence[str], arm: str, notes: List[str]):
    """Frequency bins and class names from the first root's training pixel
    counts (``(None, None)`` with a note when no root has them)."""
    for root in roots:
        path = osp.join(root, CLASS_PIXELS_FILE)
        runs = sorted(glob.glob(osp.join(root, arm, 'seed*')))
        if not (osp.isfile(path) and runs):
            continue
        run = load_run(arm, runs[0], [])
        if run is None:
            continue
        freq = load_class_pixels(path, run.classes, notes)
        if freq is not None:
            return frequency_bins(np.asarray(freq, dtype=np.float64)), \
                run.classes
    notes.append(f'no {CLASS_PIXELS_FILE} in any root: no rare-third column')
    return None, None


def summarise(sweeps: Sequence[Tuple[str, str]], arms: Sequence[str],
              baseline: str, level: float = 0.95) -> dict:
    """Every number of the sweep's tables (see the module docstring).

    Args:
        sweeps: ``[(batch label, study root), ...]``.
        arms: Arm folder names, in table order.
        baseline: The arm the others are compared with at each batch.
        level: Confidence level of the intervals.

    Returns:
        A JSON-ready dict: ``labels``, ``arms``, ``baseline``, ``metrics``,
        ``notes``, ``rare_classes``, ``frequent_classes``,
        ``largest_batch`` and ``cells['LABEL|ARM'][metric]`` with ``mean``,
        ``half``, ``values`` and, where defined, ``vs_baseline`` and
        ``vs_largest_batch`` (``delta``, ``half``, ``p``).
    """
    notes: List[str] = []
    bins, classes = _rare_bins([r for _, r in sweeps], baseline, notes)
    values = {label: {arm: arm_values(root, arm, notes, bins)
                      for arm in arms} for label, root in sweeps}
    metrics = ['mIoU'] + (['rare', 'frequent'] if bins is not None
                          else []) + ['aAcc']
    res = {'labels': [lab for lab, _ in sweeps], 'arms': list(arms),
           'baseline': baseline, 'metrics': metrics, 'notes': notes,
           'rare_classes': None if bins is None else
           [classes[i] for i in bins[0]],
           'frequent_classes': None if bins is None else
           [classes[i] for i in bins[-1]], 'cells': {}}
    ref_label = max(res['labels'], key=images_per_step)
    for label, _ in sweeps:
        for arm in arms:
            vals = values[label][arm]
            cell = {'seeds': sorted(vals)}
            for m in metrics:
                x = [vals[s][m] for s in sorted(vals)]
                mean, half = t_interval(x, level) if x else (math.nan,
                                                             math.nan)
                cell[m] = {'mean': mean, 'half': half, 'values': x}
                base = values[label][baseline]
                common = [s for s in sorted(vals) if s in base]
                if arm != baseline and len(common) >= 2:
                    d, h, p = paired_t([vals[s][m] for s in common],
                                       [base[s][m] for s in common], level)
                    cell[m]['vs_baseline'] = {'delta': d, 'half': h, 'p': p}
                ref = values[ref_label][arm]
                if label != ref_label and len(x) >= 2 and len(ref) >= 2:
                    y = [ref[s][m] for s in sorted(ref)]
                    d, h, p = welch_t(x, y, level)
                    cell[m]['vs_largest_batch'] = {'delta': d, 'half': h,
                                                   'p': p}
            res['cells'][f'{label}|{arm}'] = cell
    res['largest_batch'] = ref_label
    return res


def _fmt(v: Optional[dict], key: str = 'mean') -> str:
    """``mean +- half`` (``key='mean'``) or ``delta [lo, hi]``; ``-`` when
    undefined."""
    if not v or not np.isfinite(v.get(key, math.nan)):
        return '-'
    if key == 'mean':
        return f"{v['mean']:.2f} +- {v['half']:.2f}" if np.isfinite(
            v['half']) else f"{v['mean']:.2f}"
    return f"{v['delta']:+.2f} [{v['delta'] - v['half']:+.2f}, " \
        f"{v['delta'] + v['half']:+.2f}]"


def sweep_document(res: dict, figure_path: Optional[str] = None
                   ) -> Document:
    """The tables (and the figure) of :func:`summarise`'s result.

    Args:
        res: The result of :func:`summarise`.
        figure_path: The PNG of :func:`sweep_figure`, or None.

    Returns:
        The document; :func:`write_sweep` renders it to Markdown and HTML.
    """
    doc = Document()
    doc.h(1, 'Batch-size sweep')
    doc.p('Mean over seeds +- 95% t half-width; differences to '
          f"`{res['baseline']}` at the same batch are paired over seeds, "
          f"drops from batch {res['largest_batch']} are Welch intervals "
          '(different trainings). Batch labels: images per process, '
          '`BxR` = B per process on R processes.')
    for key, what in (('rare_classes', 'Rarest'),
                      ('frequent_classes', 'Most frequent')):
        if res.get(key):
            doc.p(f'{what} third (training pixel share): '
                  + ', '.join(res[key]) + '.')
    if figure_path is not None:
        doc.img(figure_path, 'mIoU and rare-third mIoU against the batch '
                '(mean and 95% interval over seeds; squares: multi-process '
                'settings)')
    for m in res['metrics']:
        for part, title, key in (('', 'mean', 'mean'),
                                 ('vs_baseline', f"vs {res['baseline']}",
                                  'delta'),
                                 ('vs_largest_batch', 'drop from batch '
                                  f"{res['largest_batch']}", 'delta')):
            rows = []
            for arm in res['arms']:
                row = [arm]
                for lab in res['labels']:
                    c = res['cells'][f'{lab}|{arm}'][m]
                    row.append(_fmt(c if not part else c.get(part), key))
                rows.append(row)
            doc.h(2, f'{METRIC_NAMES[m]}: {title}')
            doc.table(['arm'] + list(res['labels']), rows)
    if res['notes']:
        doc.p('Notes:')
        doc.ul(res['notes'])
    return doc


def sweep_figure(res: dict, path: str) -> Optional[str]:
    """Mean +- interval against the images per step, one colour per arm.

    Single-process batches are joined by a line; a multi-process setting
    (``BxR``, R > 1) is its own point (a square, no line: it is not a step
    along the same axis).

    Returns:
        None when the figure was written, else the reason it was not.
    """
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return 'matplotlib is not installed: no figure'
    labels = sorted(res['labels'], key=images_per_step)
    metrics = [m for m in FIGURE_METRICS if m in res['metrics']]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    for ax, m in zip(axes, metrics):
        for k, arm in enumerate(res['arms']):
            label = arm
            for multi in (False, True):
                idx = [i for i, lab in enumerate(labels)
                       if is_multi_process(lab) == multi]
                if not idx:
                    continue
                c = [res['cells'][f'{labels[i]}|{arm}'][m] for i in idx]
                xs = np.array(idx) + (k - len(res['arms']) / 2) * 0.04
                ax.errorbar(xs, [v['mean'] for v in c],
                            yerr=[v['half'] if np.isfinite(v['half']) else 0
                                  for v in c], marker='s' if multi else 'o',
                            linestyle='none' if multi else '-', capsize=3,
                            color=f'C{k}', label=label)
                label = None   # one legend entry per arm
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel('batch (images per process x processes)')
        ax.set_ylabel(METRIC_NAMES[m])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def write_sweep(sweeps: Sequence[Tuple[str, str]], arms: Sequence[str],
                baseline: str, out_dir: str) -> List[str]:
    """Summarise the sweep and write its files into ``out_dir``.

    Args:
        sweeps: ``[(batch label, study root), ...]``.
        arms: Arm folder names, in table order.
        baseline: The arm the others are compared with at each batch.
        out_dir: Receives batch_sweep.md, .html, .json and .png.

    Returns:
        The paths written (the PNG only when it could be drawn; the JSON
        then has a note saying why not).
    """
    res = summarise(sweeps, arms, baseline)
    os.makedirs(out_dir, exist_ok=True)
    png = osp.join(out_dir, 'batch_sweep.png')
    note = sweep_figure(res, png)
    if note:
        res['notes'].append(note)
    doc = sweep_document(res, None if note else png)
    paths = {ext: osp.join(out_dir, f'batch_sweep.{ext}')
             for ext in ('md', 'html', 'json')}
    with open(paths['md'], 'w') as f:
        f.write(doc.markdown(out_dir))
    with open(paths['html'], 'w') as f:
        f.write(doc.html('Batch-size sweep'))
    with open(paths['json'], 'w') as f:
        json.dump(res, f, indent=1, default=float)
    return list(paths.values()) + ([] if note else [png])
