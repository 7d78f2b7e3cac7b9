"""Reading run folders: metrics, confusion, per-image counts, logs, configs.

A run is one seed of one arm: a training work dir or a metrics folder written
by ``tools/test.py``. :func:`load_run` reads what is there and records what
is missing in ``notes`` instead of failing.
"""
from __future__ import annotations

import glob
import json
import math
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..functional import SUMMARY_METRICS
from ..metrics_file import (CONFUSION_FILE, METRICS_FILE, MetricsFileError,
                            load_metrics)
from ..per_image import PER_IMAGE_FILE, PerImageStats
from ..predictions import PREDS_INDEX_FILE, PredictionIndex

#: Written by tools/ablate.py into each run's work dir (the one definition).
RUN_RECORD_FILE = 'ablate_run.json'
#: Training pixels per class (``tools/check_dataset.py --split train
#: --json``), written once by tools/ablate.py into its work root; the
#: frequency bins of the report and of the batch-size sweep read it.
CLASS_PIXELS_FILE = 'train_class_pixels.json'
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
    preds: Optional[PredictionIndex] = None

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
    if osp.isfile(osp.join(mdir, PREDS_INDEX_FILE)):
        try:
            run.preds = PredictionIndex.load(mdir)
        except (OSError, ValueError, KeyError) as exc:
            notes.append(f'[{arm}] {osp.join(mdir, PREDS_INDEX_FILE)}: '
                         f'unreadable ({exc}); its predictions are not '
                         f'shown.')
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


def load_class_pixels(path: str, classes: Sequence[str],
                      notes: List[str]) -> Optional[np.ndarray]:
    """Training pixels per class from a JSON file, in ``classes`` order.

    Accepts the output of ``tools/check_dataset.py CONFIG --split train
    --json PATH`` (pixels summed over its datasets by class name) or a plain
    ``{class: pixels}`` object. Problems go to ``notes`` and give None.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        notes.append(f'{path}: unreadable training class counts ({exc}); '
                     f'ignored.')
        return None
    counts: Dict[str, float] = {}
    if isinstance(data, dict) and isinstance(data.get('reports'), list):
        for rep in data['reports']:
            for c in rep.get('classes', []):
                counts[c['name']] = counts.get(c['name'], 0) + c['pixels']
    elif isinstance(data, dict):
        counts = {k: v for k, v in data.items()
                  if isinstance(v, (int, float))}
    missing = [c for c in classes if c not in counts]
    if missing:
        notes.append(f'{path}: no training pixel count for '
                     f'{len(missing)} classes (e.g. {missing[0]!r}); '
                     f'training class counts ignored.')
        return None
    return np.array([float(counts[c]) for c in classes])
