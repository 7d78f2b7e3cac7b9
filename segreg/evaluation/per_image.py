"""Per-image, per-class pixel counts, stored sparsely for image bootstraps.

An evaluation of N images and C classes keeps, for every image, only the
classes that occur in its ground truth or its prediction (a handful out of
COCO-Stuff's 171), in compressed-sparse-row form::

    per_image.npz
      names       (N,)   str     image file name (no folder)
      ptr         (N+1,) int64   image i owns entries ptr[i]:ptr[i+1]
      cls         (nnz,) int32   class index of each entry, ascending per image
      intersect   (nnz,) uint32  tp  = pixels with GT c and prediction c
      union       (nnz,) uint32  gt + pred - tp
      gt_area     (nnz,) uint32  pixels with GT c (ignore_index pixels dropped)
      pred_area   (nnz,) uint32  pixels predicted c (same mask)
      num_classes ()     int64
      schema_version ()  int64

Counts are uint32 (an image has far fewer than 2**32 pixels; int64 is used
if one does not fit). ``np.load(path)`` reads it without pickle. Summing the
rows of any multiset of images gives that multiset's class counts, from which
:mod:`segreg.evaluation.functional` computes every metric, so confidence
intervals can be bootstrapped over images without re-running inference
(:mod:`segreg.evaluation.stats`).
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

PER_IMAGE_SCHEMA_VERSION = 1
PER_IMAGE_FILE = 'per_image.npz'


@dataclass
class PerImageStats:
    """Sparse per-image class counts (see the module docstring)."""

    names: np.ndarray
    ptr: np.ndarray
    cls: np.ndarray
    intersect: np.ndarray
    gt_area: np.ndarray
    pred_area: np.ndarray
    num_classes: int

    @property
    def num_images(self) -> int:
        return len(self.names)

    @property
    def union(self) -> np.ndarray:
        return (self.gt_area.astype(np.int64) + self.pred_area -
                self.intersect)

    # ------------------------------------------------------------ building
    @classmethod
    def from_sparse_confusions(cls_, names: Sequence[str],
                               cells: Sequence[np.ndarray],
                               counts: Sequence[np.ndarray],
                               num_classes: int) -> 'PerImageStats':
        """Build from per-image sparse confusion matrices.

        Args:
            names: Image names, one per image.
            cells: Per image, the flat indices ``gt * C + pred`` of its
                non-zero confusion cells.
            counts: Per image, the pixel count of each of those cells.
            num_classes: ``C``.
        """
        C = int(num_classes)
        n = len(names)
        sizes = np.array([len(c) for c in cells], dtype=np.int64)
        img = np.repeat(np.arange(n, dtype=np.int64), sizes)
        flat = (np.concatenate(cells).astype(np.int64) if n else
                np.zeros(0, np.int64))
        cnt = (np.concatenate(counts).astype(np.int64) if n else
               np.zeros(0, np.int64))
        gt, pr = flat // C, flat % C
        keys_gt, keys_pr = img * C + gt, img * C + pr
        keys = np.unique(np.concatenate([keys_gt, keys_pr]))
        gt_area = np.bincount(np.searchsorted(keys, keys_gt), weights=cnt,
                              minlength=len(keys))
        pred_area = np.bincount(np.searchsorted(keys, keys_pr), weights=cnt,
                                minlength=len(keys))
        diag = gt == pr
        inter = np.bincount(np.searchsorted(keys, keys_gt[diag]),
                            weights=cnt[diag], minlength=len(keys))
        ptr = np.searchsorted(keys // C, np.arange(n + 1), side='left')
        as_int = lambda a: np.rint(a).astype(np.int64)  # noqa: E731
        return cls_(names=np.asarray([str(s) for s in names], dtype=str),
                    ptr=ptr.astype(np.int64),
                    cls=(keys % C).astype(np.int32),
                    intersect=as_int(inter), gt_area=as_int(gt_area),
                    pred_area=as_int(pred_area), num_classes=C)

    # ------------------------------------------------------------ dense views
    def sparse_rows(self, which: str):
        """``scipy.sparse.csr_matrix`` (N, C) of one count array."""
        from scipy import sparse
        data = getattr(self, which).astype(np.float64)
        return sparse.csr_matrix((data, self.cls, self.ptr),
                                 shape=(self.num_images, self.num_classes))

    def totals(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tp, gt, pred)`` per class summed over all images."""
        C = self.num_classes
        return tuple(
            np.bincount(self.cls, weights=getattr(self, k),
                        minlength=C).round().astype(np.int64)
            for k in ('intersect', 'gt_area', 'pred_area'))

    def reorder(self, names: Sequence[str]) -> 'PerImageStats':
        """The same stats with images in the order of ``names``.

        Raises:
            KeyError: if a name is not in these stats.
        """
        index = {n: i for i, n in enumerate(self.names.tolist())}
        order = np.array([index[n] for n in names], dtype=np.int64)
        lengths = np.diff(self.ptr)[order]
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = (np.concatenate([np.arange(self.ptr[i], self.ptr[i + 1])
                                for i in order]).astype(np.int64)
                if len(order) else np.zeros(0, np.int64))
        return PerImageStats(self.names[order], ptr, self.cls[take],
                             self.intersect[take], self.gt_area[take],
                             self.pred_area[take], self.num_classes)

    # ------------------------------------------------------------ files
    def save(self, path: str) -> None:
        big = max([int(a.max()) for a in (self.gt_area, self.pred_area)
                   if a.size] or [0])
        dtype = np.uint32 if big < 2**32 else np.int64
        np.savez_compressed(
            path, names=self.names, ptr=self.ptr, cls=self.cls,
            intersect=self.intersect.astype(dtype),
            union=self.union.astype(dtype),
            gt_area=self.gt_area.astype(dtype),
            pred_area=self.pred_area.astype(dtype),
            num_classes=np.int64(self.num_classes),
            schema_version=np.int64(PER_IMAGE_SCHEMA_VERSION))

    @classmethod
    def load(cls_, path: str) -> 'PerImageStats':
        """Read a ``per_image.npz``; raises ValueError on a foreign file."""
        if osp.isdir(path):
            path = osp.join(path, PER_IMAGE_FILE)
        with np.load(path, allow_pickle=False) as z:
            need = {'names', 'ptr', 'cls', 'intersect', 'gt_area',
                    'pred_area', 'num_classes'}
            if not need.issubset(z.files):
                raise ValueError(f'{path}: not a segreg per-image file '
                                 f'(missing {sorted(need - set(z.files))})')
            return cls_(names=z['names'], ptr=z['ptr'].astype(np.int64),
                        cls=z['cls'].astype(np.int64),
                        intersect=z['intersect'].astype(np.int64),
                        gt_area=z['gt_area'].astype(np.int64),
                        pred_area=z['pred_area'].astype(np.int64),
                        num_classes=int(z['num_classes']))
