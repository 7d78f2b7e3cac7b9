"""``SegregIoUMetric``: IoUMetric with one class rule and per-image counts.

Use it as ``val_evaluator`` / ``test_evaluator`` in a config (``import
segreg`` registers it in mmseg's ``METRICS``)::

    test_evaluator = dict(type='SegregIoUMetric', ignore_index=255,
                          out_dir='work_dirs/x/eval')

Per image it keeps only the non-zero cells of the image's confusion matrix
(a few dozen integers), so results stay small when mmengine gathers them
from every rank with ``collect_results`` under DDP. On the main process it
sums them into the confusion matrix, derives the per-image class counts
(:mod:`segreg.evaluation.per_image`) and computes every metric with the class
rule of :mod:`segreg.evaluation.functional`. With ``out_dir`` it also writes
``metrics.json``, ``confusion.npy`` and ``per_image.npz`` there
(:mod:`segreg.evaluation.metrics_file`).

The returned metrics (logged, and written to ``scalars.json`` during
training) are in percent with mmseg's names: aAcc, mIoU, mAcc, mDice,
mFscore, mPrecision, mRecall. mIoU equals mmseg's IoUMetric; mAcc, mFscore,
mPrecision and mRecall can be lower because classes predicted but absent from
the ground truth score 0 instead of being dropped (see functional.py).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from .metrics_file import (build_metrics_dict, format_table,
                           write_metrics_folder)
from .per_image import PerImageStats
from .predictions import default_palette, save_label_png, write_index


def sparse_confusion(pred: torch.Tensor, gt: torch.Tensor, num_classes: int,
                     ignore_index: int = 255):
    """Non-zero cells of one image's confusion matrix.

    Args:
        pred: ``(H, W)`` predicted labels.
        gt: ``(H, W)`` ground-truth labels (``ignore_index`` dropped).
        num_classes: ``C``.
        ignore_index: Ground-truth value to ignore.

    Returns:
        ``(cells, counts)``: int32 flat indices ``gt * C + pred`` and their
        int64 pixel counts, as NumPy arrays.

    Raises:
        ValueError: A label outside ``[0, C)`` (mmseg drops those silently).
    """
    pred = pred.reshape(-1).long()
    gt = gt.reshape(-1).to(pred.device).long()
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    if gt.numel():
        for t, what in ((gt, 'ground truth'), (pred, 'prediction')):
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(
                    f'{what} label {lo if lo < 0 else hi} is outside '
                    f'[0, {num_classes}) and is not ignore_index '
                    f'{ignore_index}: check the dataset classes / label map '
                    f'and model.decode_head.num_classes')
    flat = torch.bincount(gt * num_classes + pred,
                          minlength=num_classes * num_classes)
    cells = torch.nonzero(flat, as_tuple=True)[0]
    return (cells.cpu().numpy().astype(np.int32),
            flat[cells].cpu().numpy().astype(np.int64))


@METRICS.register_module()
class SegregIoUMetric(BaseMetric):
    """IoU, Acc, Dice, F-score, precision, recall with one class rule.

    Args:
        ignore_index: Ground-truth value that is not scored.
        beta: Weight of recall in the F-score.
        out_dir: If given, write metrics.json, confusion.npy and
            per_image.npz here (main process only).
        pred_dir: If given, save each predicted label map as a PNG named
            after its image (class indices of the config's class list, uint8,
            or 16-bit when there are more than 256 classes).
        overlay_dir: If given, save the image blended with the colour-coded
            prediction (dataset palette) as PNG.
        gt_dir: If given, save each ground truth as scored (after the
            dataset's label mapping, ``ignore_index`` kept) as PNG. With
            ``pred_dir`` and ``out_dir``, ``out_dir/preds_index.json`` lists
            the images, classes and palette
            (:mod:`segreg.evaluation.predictions`), which the report's
            qualitative grid reads.
        meta: Extra keys for metrics.json (config, checkpoint, command).
        log_per_class: Log the per-class table (tools/test.py prints it
            itself at the end).
        collect_device: ``'cpu'`` or ``'gpu'``, as in mmengine.
        prefix: Metric name prefix, as in mmengine.
        iou_metrics: Accepted for drop-in compatibility with mmseg's
            IoUMetric configs; every metric is always computed.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 ignore_index: int = 255,
                 beta: float = 1.0,
                 out_dir: Optional[str] = None,
                 pred_dir: Optional[str] = None,
                 overlay_dir: Optional[str] = None,
                 gt_dir: Optional[str] = None,
                 meta: Optional[Dict[str, Any]] = None,
                 log_per_class: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 iou_metrics: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = int(ignore_index)
        self.beta = float(beta)
        self.out_dir = out_dir
        self.pred_dir = pred_dir
        self.overlay_dir = overlay_dir
        self.gt_dir = gt_dir
        self.meta = dict(meta or {})
        self.log_per_class = log_per_class
        #: Set by compute_metrics on the main process, for callers.
        self.last_metrics: Optional[dict] = None
        self.last_confusion: Optional[np.ndarray] = None
        self.last_per_image: Optional[PerImageStats] = None

    # ------------------------------------------------------------------
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze()
            gt = sample['gt_sem_seg']['data'].squeeze()
            cells, counts = sparse_confusion(pred, gt, num_classes,
                                             self.ignore_index)
            path = sample.get('img_path') or ''
            name = osp.basename(path) if path else \
                f'image_{len(self.results)}'
            # the image path travels with the counts so that rank 0 can
            # write the predictions index after collect_results
            self.results.append((name, cells, counts, path))
            if self.pred_dir or self.overlay_dir:
                self._save_prediction(pred.cpu().numpy(), path, name)
            if self.gt_dir:
                save_label_png(gt.cpu().numpy(), osp.join(
                    self.gt_dir, osp.splitext(name)[0] + '.png'))

    def _save_prediction(self, pred: np.ndarray, img_path: str,
                         name: str) -> None:
        from PIL import Image
        stem = osp.splitext(name)[0]
        if self.pred_dir:
            save_label_png(pred, osp.join(self.pred_dir, stem + '.png'))
        if self.overlay_dir:
            os.makedirs(self.overlay_dir, exist_ok=True)
            palette = np.asarray(self.dataset_meta.get('palette') or
                                 default_palette(
                                     len(self.dataset_meta['classes'])),
                                 dtype=np.float32)
            color = palette[np.clip(pred, 0, len(palette) - 1)]
            if img_path and osp.isfile(img_path):
                img = Image.open(img_path).convert('RGB')
                if img.size != (pred.shape[1], pred.shape[0]):
                    img = img.resize((pred.shape[1], pred.shape[0]))
                color = 0.5 * np.asarray(img, np.float32) + 0.5 * color
            Image.fromarray(color.clip(0, 255).astype(np.uint8)).save(
                osp.join(self.overlay_dir, stem + '.png'))

    # ------------------------------------------------------------------
    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes = list(self.dataset_meta['classes'])
        C = len(classes)
        names = [r[0] for r in results]
        cells = [np.asarray(r[1]) for r in results]
        counts = [np.asarray(r[2]) for r in results]
        if cells:
            flat = np.bincount(np.concatenate(cells).astype(np.int64),
                               weights=np.concatenate(counts),
                               minlength=C * C)
        else:
            flat = np.zeros(C * C)
        conf = np.rint(flat).astype(np.int64).reshape(C, C)
        per_image = PerImageStats.from_sparse_confusions(names, cells,
                                                         counts, C)
        if self.out_dir:
            metrics = write_metrics_folder(self.out_dir, conf, per_image,
                                           classes, self.ignore_index,
                                           self.beta, self.meta)
        else:
            metrics = build_metrics_dict(conf, classes, len(names),
                                         self.ignore_index, self.beta,
                                         self.meta)
        if self.out_dir and self.pred_dir:
            write_index(self.out_dir, classes,
                        self.dataset_meta.get('palette'), self.ignore_index,
                        {r[0]: (r[3] if len(r) > 3 else '') for r in results})
        self.last_metrics, self.last_confusion = metrics, conf
        self.last_per_image = per_image
        if self.log_per_class:
            logger: MMLogger = MMLogger.get_current_instance()
            print_log('per class results (segreg class rule):\n' +
                      format_table(metrics), logger=logger)
        from .functional import SUMMARY_METRICS
        return {k: (float('nan') if metrics[k] is None else metrics[k])
                for k in SUMMARY_METRICS}
