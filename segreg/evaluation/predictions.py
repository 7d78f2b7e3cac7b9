"""Saved label maps of an evaluation (``tools/test.py --save-preds``).

Layout inside the metrics folder ``DIR``::

    preds/<stem>.png     predicted class indices (uint8; uint16 above 256
                         classes), the original image size
    gt/<stem>.png        the ground truth as scored (after the dataset's
                         label mapping; ``ignore_index`` kept)
    overlays/<stem>.png  the image blended with the coloured prediction
    preds_index.json     {"schema": "segreg.preds", "schema_version": 1,
                          "classes": [..], "palette": [[r, g, b], ..],
                          "ignore_index": 255,
                          "images": {"<name>": {"stem": .., "img_path": ..}}}

The report (:mod:`segreg.evaluation.report.qualitative`) reads these files
only, so drawing the qualitative grid needs neither a model nor a config.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

PREDS_DIR = 'preds'
GT_DIR = 'gt'
OVERLAYS_DIR = 'overlays'
PREDS_INDEX_FILE = 'preds_index.json'
PREDS_SCHEMA_VERSION = 1


def default_palette(n: int) -> np.ndarray:
    """A fixed random palette for datasets without one, ``(n, 3)`` uint8."""
    rng = np.random.RandomState(0)
    return rng.randint(0, 256, size=(n, 3)).astype(np.uint8)


def save_label_png(label: np.ndarray, path: str) -> None:
    """A label map as a PNG: uint8, or uint16 when a value exceeds 255."""
    from PIL import Image
    label = np.asarray(label)
    dtype = np.uint8 if label.max(initial=0) < 256 else np.uint16
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    Image.fromarray(label.astype(dtype)).save(path)


def write_index(out_dir: str, classes: Sequence[str],
                palette: Optional[Sequence[Sequence[int]]],
                ignore_index: int, images: Dict[str, str]) -> str:
    """Write ``preds_index.json``; ``images`` maps image name -> image path."""
    pal = (np.asarray(palette, dtype=np.int64) if palette is not None and
           len(palette) >= len(classes) else default_palette(len(classes)))
    data = dict(schema='segreg.preds', schema_version=PREDS_SCHEMA_VERSION,
                classes=list(classes),
                palette=[[int(v) for v in c] for c in pal[:len(classes)]],
                ignore_index=int(ignore_index),
                images={name: dict(stem=osp.splitext(name)[0],
                                   img_path=path)
                        for name, path in images.items()})
    path = osp.join(out_dir, PREDS_INDEX_FILE)
    os.makedirs(out_dir, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)
    return path


class PredictionIndex:
    """Read access to the saved predictions of one metrics folder."""

    def __init__(self, metrics_dir: str, data: dict):
        self.metrics_dir = metrics_dir
        self.classes = list(data['classes'])
        self.palette = np.asarray(data['palette'], dtype=np.uint8)
        self.ignore_index = int(data.get('ignore_index', 255))
        self.images: Dict[str, dict] = dict(data['images'])

    @classmethod
    def load(cls, metrics_dir: str) -> 'PredictionIndex':
        """Raises ``OSError`` / ``ValueError`` / ``KeyError`` if unusable."""
        with open(osp.join(metrics_dir, PREDS_INDEX_FILE)) as f:
            data = json.load(f)
        if data.get('schema') != 'segreg.preds':
            raise ValueError('not a segreg.preds index')
        return cls(metrics_dir, data)

    def _png(self, folder: str, name: str) -> Optional[np.ndarray]:
        from PIL import Image
        path = osp.join(self.metrics_dir, folder,
                        self.images[name]['stem'] + '.png')
        if not osp.isfile(path):
            return None
        with Image.open(path) as im:
            return np.asarray(im).astype(np.int64)

    def pred(self, name: str) -> Optional[np.ndarray]:
        """Predicted label map of image ``name`` (None if not saved)."""
        return self._png(PREDS_DIR, name)

    def gt(self, name: str) -> Optional[np.ndarray]:
        """Ground-truth label map as scored (None if not saved)."""
        return self._png(GT_DIR, name)

    def image(self, name: str) -> Optional[np.ndarray]:
        """The input image, ``(H, W, 3)`` uint8 (None if not found)."""
        from PIL import Image
        path = self.images[name].get('img_path')
        if not path or not osp.isfile(path):
            return None
        with Image.open(path) as im:
            return np.asarray(im.convert('RGB'))

    def colorize(self, label: np.ndarray,
                 ignore_color=(0, 0, 0)) -> np.ndarray:
        """Label map -> RGB with the dataset palette; ignored pixels black."""
        label = np.asarray(label)
        out = np.empty(label.shape + (3, ), np.uint8)
        out[...] = ignore_color
        ok = (label >= 0) & (label < len(self.palette))
        out[ok] = self.palette[label[ok]]
        return out
