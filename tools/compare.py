#!/usr/bin/env python
"""Compare labelled runs: "mIoU with and without the regularizer".

Examples:
    # three seeds per arm, as laid out by tools/ablate.py
    python tools/compare.py \\
        --run baseline='work_dirs/ablation/baseline/seed*' \\
        --run dualiou='work_dirs/ablation/dualiou/seed*' \\
        --baseline baseline --out work_dirs/ablation/report

    # single folders; the same NAME repeated adds seeds to that arm
    python tools/compare.py --run ce=W1/eval --run ce=W2/eval \\
        --run ce+dual=W3 --run ce+dual=W4 --out report

Each DIR is a training work dir (metrics are looked up in DIR, DIR/eval or
below; training curves in DIR/<timestamp>/vis_data/scalars.json) or a metrics
folder written by tools/test.py (the work dir is then found through the
checkpoint path recorded in metrics.json). Quote globs so that this script,
not the shell, expands them.

Writes OUT/report.md, OUT/report.html (self-contained, opens offline),
OUT/figures/*.png (and figures/grid/*.png, the tiles of the qualitative grid
drawn from predictions saved by `tools/test.py --save-preds`),
OUT/configs/*.py and OUT/summary.json. Runs that cannot be
used (missing metrics, older metrics schema, other class list...) and missing
pieces (training log, per-image counts, a single seed) are listed in the
report's "Left out" section and on stderr; the report is still written.
Exit status: 0 when written, 2 when no run is usable or the arguments are
wrong.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--run',
        action='append',
        required=True,
        metavar='NAME=DIR',
        help='a labelled run folder (repeat; DIR may be a quoted glob; the '
        'same NAME several times = several seeds of one arm)')
    parser.add_argument(
        '--baseline',
        help='arm the others are compared with (default: the first NAME)')
    parser.add_argument('--out', required=True, help='report folder')
    parser.add_argument(
        '--bootstrap',
        type=int,
        default=1000,
        help='image-bootstrap resamples (0: no image bootstrap; default '
        '1000)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the bootstrap resampling')
    parser.add_argument('--level', type=float, default=0.95,
                        help='confidence level of the intervals')
    parser.add_argument('--title', default='segreg: with vs without the '
                        'regularizer', help='report title')
    parser.add_argument(
        '--train-class-pixels',
        metavar='JSON',
        help='training pixels per class for the frequency bins: the output '
        'of `tools/check_dataset.py CONFIG --split train --json JSON` (or '
        '{class: pixels}); default: the test set\'s ground truth')
    parser.add_argument('--max-grid-images', type=int, default=12,
                        help='cap on the images of the qualitative grid '
                        '(default 12)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from segreg.evaluation.report import (ReportError, build_report,
                                          parse_run_specs)
    if not 0 < args.level < 1:
        print(f'error: --level must be in (0, 1), got {args.level}',
              file=sys.stderr)
        return 2
    try:
        specs = parse_run_specs(args.run)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    names = [n for n, _ in specs]
    if args.baseline is not None and args.baseline not in names:
        print(f'error: --baseline {args.baseline!r} is not one of the --run '
              f'names {sorted(set(names))}', file=sys.stderr)
        return 2
    start = time.time()
    try:
        res = build_report(specs, args.out, baseline=args.baseline,
                           bootstrap=args.bootstrap, seed=args.seed,
                           level=args.level, title=args.title,
                           train_class_pixels=args.train_class_pixels,
                           max_grid_images=args.max_grid_images)
    except ReportError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for note in res.left_out:
        print(f'left out: {note}', file=sys.stderr)
    print(res.summary_table())
    print(f'report: {osp.join(args.out, "report.md")}, '
          f'{osp.join(args.out, "report.html")} ({len(res.figures)} '
          f'figures, {time.time() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
