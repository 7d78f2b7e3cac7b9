"""The ``metrics.json`` / ``confusion.npy`` / ``per_image.npz`` folder.

``tools/test.py CONFIG CKPT --out DIR`` (through :class:`SegregIoUMetric`)
writes, and ``tools/compare.py`` reads, a folder with::

    metrics.json    summary + per-class metrics in percent (schema below)
    confusion.npy   (C, C) int64, rows = ground truth, cols = prediction
    per_image.npz   sparse per-image class counts (segreg.evaluation.per_image)

``metrics.json`` (schema_version 1)::

    {"schema": "segreg.metrics", "schema_version": 1,
     "aAcc": 91.2, "mIoU": 55.0, "mAcc": ..., "mDice": ..., "mFscore": ...,
     "mPrecision": ..., "mRecall": ...,            # percent, null if undefined
     "per_class": {"<class>": {"IoU": .., "Acc": .., "Dice": .., "Fscore": ..,
                              "Precision": .., "Recall": ..}},  # null: excl.
     "classes": [...], "num_classes": C, "num_classes_scored": k,
     "gt_pixels": [...], "pred_pixels": [...],     # per class
     "num_images": N, "ignore_index": 255, "beta": 1.0,
     "convention": "...", "files": {"confusion": .., "per_image": ..},
     "config": "...", "checkpoint": "...", "command": "...",
     "created": "ISO time", "segreg_version": "0.1.0"}

Values are stored unrounded; the tools round when printing.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .functional import (CLASS_METRICS, CONVENTION, SUMMARY_METRICS,
                         counts_from_confusion, metrics_from_confusion)
from .per_image import PER_IMAGE_FILE, PerImageStats

METRICS_SCHEMA = 'segreg.metrics'
METRICS_SCHEMA_VERSION = 1
METRICS_FILE = 'metrics.json'
CONFUSION_FILE = 'confusion.npy'


class MetricsFileError(ValueError):
    """A metrics folder that cannot be used (missing, foreign, old schema)."""


def _num(x: float) -> Optional[float]:
    x = float(x)
    return None if math.isnan(x) else x


def build_metrics_dict(conf: np.ndarray, classes: Sequence[str],
                       num_images: int, ignore_index: int = 255,
                       beta: float = 1.0,
                       meta: Optional[Dict[str, Any]] = None) -> dict:
    """The ``metrics.json`` content of one evaluation (percent)."""
    conf = np.asarray(conf, dtype=np.int64)
    if conf.shape != (len(classes), len(classes)):
        raise ValueError(f'confusion matrix {conf.shape} does not match '
                         f'{len(classes)} classes')
    m = metrics_from_confusion(conf, beta)
    _, gt, pred = counts_from_confusion(conf)
    out: Dict[str, Any] = {'schema': METRICS_SCHEMA,
                           'schema_version': METRICS_SCHEMA_VERSION}
    for k in SUMMARY_METRICS:
        out[k] = _num(100.0 * m[k])
    out['per_class'] = {
        str(name): {k: _num(100.0 * m['per_class'][k][i])
                    for k in CLASS_METRICS}
        for i, name in enumerate(classes)
    }
    from .. import __version__
    out.update(
        classes=[str(c) for c in classes],
        num_classes=len(classes),
        num_classes_scored=int(np.sum((gt + pred) > 0)),
        gt_pixels=[int(v) for v in gt],
        pred_pixels=[int(v) for v in pred],
        num_images=int(num_images),
        ignore_index=int(ignore_index),
        beta=float(beta),
        convention=CONVENTION,
        files={'confusion': CONFUSION_FILE, 'per_image': PER_IMAGE_FILE},
        created=datetime.datetime.now().isoformat(timespec='seconds'),
        segreg_version=__version__)
    for k, v in (meta or {}).items():
        out[k] = v
    return out


def write_metrics_folder(out_dir: str, conf: np.ndarray,
                         per_image: Optional[PerImageStats],
                         classes: Sequence[str], ignore_index: int = 255,
                         beta: float = 1.0,
                         meta: Optional[Dict[str, Any]] = None) -> dict:
    """Write metrics.json, confusion.npy and per_image.npz; return the dict."""
    os.makedirs(out_dir, exist_ok=True)
    num_images = per_image.num_images if per_image is not None else 0
    metrics = build_metrics_dict(conf, classes, num_images, ignore_index,
                                 beta, meta)
    np.save(osp.join(out_dir, CONFUSION_FILE), np.asarray(conf, np.int64))
    if per_image is not None:
        per_image.save(osp.join(out_dir, PER_IMAGE_FILE))
    tmp = osp.join(out_dir, METRICS_FILE + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(metrics, f, indent=1)
    os.replace(tmp, osp.join(out_dir, METRICS_FILE))  # complete or absent
    return metrics


def load_metrics(path: str) -> dict:
    """Read and validate a ``metrics.json`` (file or folder).

    Raises:
        MetricsFileError: file missing, not JSON, from an older or newer
            schema, or without the required keys; the message says how to
            regenerate it.
    """
    if osp.isdir(path):
        path = osp.join(path, METRICS_FILE)
    if not osp.isfile(path):
        raise MetricsFileError(f'{path}: no such file')
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise MetricsFileError(f'{path}: not readable JSON ({exc})') from exc
    redo = ('re-run `python tools/test.py CONFIG CHECKPOINT --out '
            f'{osp.dirname(path) or "."}` to regenerate it')
    if not isinstance(data, dict):
        raise MetricsFileError(f'{path}: not a metrics object; {redo}')
    version = data.get('schema_version')
    if data.get('schema', METRICS_SCHEMA) != METRICS_SCHEMA:
        raise MetricsFileError(f'{path}: schema {data.get("schema")!r} is '
                               f'not {METRICS_SCHEMA!r}; {redo}')
    if version is None:
        raise MetricsFileError(
            f'{path}: no schema_version (written by an older segreg or by '
            f'mmseg, schema < {METRICS_SCHEMA_VERSION}); {redo}')
    if not isinstance(version, int) or version < METRICS_SCHEMA_VERSION:
        raise MetricsFileError(
            f'{path}: schema_version {version!r} is older than '
            f'{METRICS_SCHEMA_VERSION}; {redo}')
    if version > METRICS_SCHEMA_VERSION:
        raise MetricsFileError(
            f'{path}: schema_version {version} is newer than this segreg '
            f'understands ({METRICS_SCHEMA_VERSION}); update segreg')
    missing: List[str] = [k for k in (*SUMMARY_METRICS, 'per_class',
                                      'classes', 'num_images')
                          if k not in data]
    if missing:
        raise MetricsFileError(f'{path}: missing key(s) {missing}; {redo}')
    return data


def format_table(metrics: dict, digits: int = 2) -> str:
    """The summary and per-class tables of a metrics dict, as plain text."""
    def fmt(v):
        return 'n/a' if v is None else f'{v:.{digits}f}'

    head = list(SUMMARY_METRICS)
    rows = [[fmt(metrics.get(k)) for k in head]]
    lines = [_text_table(head, rows)]
    classes = metrics.get('classes') or list(metrics['per_class'])
    gt = metrics.get('gt_pixels')
    total = float(sum(gt)) if gt else 0.0
    head = ['Class'] + list(CLASS_METRICS) + (['GT %'] if gt else [])
    rows = []
    for i, name in enumerate(classes):
        pc = metrics['per_class'][name]
        row = [name] + [fmt(pc.get(k)) for k in CLASS_METRICS]
        if gt:
            row.append(f'{100.0 * gt[i] / total:.3f}' if total else 'n/a')
        rows.append(row)
    lines.append(_text_table(head, rows))
    lines.append('n/a: class absent from both ground truth and prediction '
                 '(excluded from the means).')
    return '\n'.join(lines)


def _text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows))
              for i, h in enumerate(head)]
    sep = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(cells):
        return '| ' + ' | '.join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))) + ' |'

    return '\n'.join([sep, line(head), sep, *(line(r) for r in rows), sep])
