#!/usr/bin/env python
"""The batch-size sweep (issue 15): mIoU and rare-third mIoU against the batch.

Each ``--sweep LABEL=ROOT`` is one study root of
``tools/run_regularizer_experiment.py`` (``ROOT/ARM/seedS`` run folders):
the same arms trained at one batch size, with the images seen held equal
(``--batch`` / ``--ranks`` there). For every arm and batch this writes the
mean over seeds with its 95% t-interval, the paired difference to the
baseline arm at the same batch, and the drop from the largest batch to each
smaller one (Welch interval: the runs of two batches are different
trainings), for mIoU, aAcc and the mIoU of the rarest and of the most
frequent third of the classes (by training pixel share, as the report's
frequency bins). The question it is built to answer: does the dataset-level
form lose less as the batch shrinks than the per-batch surrogates?

Outputs in ``--out``: ``batch_sweep.md`` and ``batch_sweep.html`` (the same
tables and figure; the HTML embeds the figure and opens offline, as
tools/compare.py's report), ``batch_sweep.json`` (every number) and
``batch_sweep.png`` (mIoU and rare-third mIoU, mean and interval per arm
against the batch; needs matplotlib, skipped with a note without it).

Example::

    python tools/batch_sweep.py --out work_dirs/batch_sweep \\
        --sweep 8=work_dirs/regularizer_experiment/collage \\
        --sweep 4=work_dirs/regularizer_experiment/collage_b4x1 \\
        --sweep 2=work_dirs/regularizer_experiment/collage_b2x1 \\
        --sweep 2x4=work_dirs/regularizer_experiment/collage_b2x4 \\
        --arms ce lovasz jml dual_iou dual_iou_dataset
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from segreg.evaluation.report.analysis import frequency_bins  # noqa: E402
from segreg.evaluation.report.runs import (load_class_pixels,  # noqa: E402
                                           load_run)
from segreg.evaluation.stats import paired_t, t_interval, welch_t  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'tools'))
from ablate import CLASS_PIXELS_FILE  # noqa: E402  (what it writes per root)


def _batch_ranks(label: str) -> Tuple[int, int]:
    """``'8'`` -> (8, 1), ``'2x4'`` (batch x ranks) -> (2, 4); ValueError
    unless integers."""
    batch, *ranks = (int(part) for part in label.split('x'))
    return batch, math.prod(ranks)


def _images_per_step(label: str) -> int:
    """``'8'`` -> 8, ``'2x4'`` (batch x ranks) -> 8."""
    batch, ranks = _batch_ranks(label)
    return batch * ranks


def arm_values(root: str, arm: str, notes: List[str],
               bins: Optional[List[np.ndarray]] = None) -> Dict[int, dict]:
    """``{seed: {metric: value}}`` of the evaluated runs of an arm (mIoU,
    aAcc and, with ``bins``, the rare- and frequent-third mIoU)."""
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
    """Frequency bins from the first root's training pixel counts."""
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


def summarise(sweeps: Sequence[tuple], arms: Sequence[str], baseline: str,
              level: float = 0.95) -> dict:
    """Every number of the tables (see the module docstring)."""
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
    ref_label = max(res['labels'], key=_images_per_step)
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


def _fmt(v: Optional[dict], key='mean') -> str:
    if not v or not np.isfinite(v.get(key, math.nan)):
        return '-'
    if key == 'mean':
        return f"{v['mean']:.2f} +- {v['half']:.2f}" if np.isfinite(
            v['half']) else f"{v['mean']:.2f}"
    return f"{v['delta']:+.2f} [{v['delta'] - v['half']:+.2f}, " \
        f"{v['delta'] + v['half']:+.2f}]"


#: metric key -> its name in the tables and the figure
METRIC_NAMES = {'mIoU': 'mIoU', 'rare': 'rare-third mIoU',
                'frequent': 'frequent-third mIoU', 'aAcc': 'aAcc'}
#: the metrics drawn (the issue's question); the tables hold them all
FIGURE_METRICS = ('mIoU', 'rare')


def document(res: dict, figure_path: Optional[str] = None):
    """The tables (and the figure) as the report's document model
    (``segreg.evaluation.report.Document``); ``main`` renders it to
    ``batch_sweep.md`` and to self-contained ``batch_sweep.html``."""
    from segreg.evaluation.report import Document
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


def _is_multi(label: str) -> bool:
    """``'BxR'`` with ``R > 1``: a multi-process setting."""
    return _batch_ranks(label)[1] > 1


def figure(res: dict, path: str) -> Optional[str]:
    """Mean +- interval against the images per step, one line per arm."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return 'matplotlib is not installed: no figure'
    labels = sorted(res['labels'], key=_images_per_step)
    metrics = [m for m in FIGURE_METRICS if m in res['metrics']]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    for ax, m in zip(axes, metrics):
        for k, arm in enumerate(res['arms']):
            # one line through the single-process batches; a multi-process
            # setting (BxR) is its own point (square, no line: it is not a
            # step along the same axis)
            label = arm
            for multi in (False, True):
                idx = [i for i, lab in enumerate(labels)
                       if _is_multi(lab) == multi]
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sweep', action='append', required=True,
                   metavar='LABEL=ROOT',
                   help='a batch label (8, 4, 2, 2x4) and its study root')
    p.add_argument('--arms', nargs='+', required=True)
    p.add_argument('--baseline', default=None,
                   help='default: the first arm')
    p.add_argument('--out', required=True)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sweeps = []
    for spec in args.sweep:
        label, sep, root = spec.partition('=')
        if not sep or not osp.isdir(root):
            print(f'batch_sweep: --sweep {spec!r}: expected LABEL=ROOT with '
                  'an existing study root (tools/run_regularizer_experiment'
                  '.py --batch B --ranks R writes one)', file=sys.stderr)
            return 2
        try:
            _images_per_step(label)
        except ValueError:
            print(f'batch_sweep: --sweep {spec!r}: the label must be B or '
                  'BxR (integers)', file=sys.stderr)
            return 2
        sweeps.append((label, root))
    baseline = args.baseline or args.arms[0]
    res = summarise(sweeps, args.arms, baseline)
    os.makedirs(args.out, exist_ok=True)
    png = osp.join(args.out, 'batch_sweep.png')
    note = figure(res, png)
    if note:
        res['notes'].append(note)
    doc = document(res, None if note else png)
    with open(osp.join(args.out, 'batch_sweep.md'), 'w') as f:
        f.write(doc.markdown(args.out))
    with open(osp.join(args.out, 'batch_sweep.html'), 'w') as f:
        f.write(doc.html('Batch-size sweep'))
    with open(osp.join(args.out, 'batch_sweep.json'), 'w') as f:
        json.dump(res, f, indent=1, default=float)
    print(f'wrote {args.out}/batch_sweep.md, .html, .json'
          + ('' if note else ', .png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
