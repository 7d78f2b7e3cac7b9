"""Metrics of segmentation runs and the with/without comparison report.

* :mod:`.functional` -- the metric math from pixel counts, one class rule.
* :mod:`.per_image` -- sparse per-image class counts (``per_image.npz``).
* :mod:`.iou_metric` -- ``SegregIoUMetric``, registered in mmseg's METRICS.
* :mod:`.metrics_file` -- the metrics.json / confusion.npy folder.
* :mod:`.rate_metrics` -- P@R, R@P, ROC-AUC of target classes (``SegregRateMetric``).
* :mod:`.stats` -- t intervals, paired tests, image bootstrap.
* :mod:`.predictions` -- saved label maps of ``tools/test.py --save-preds``.
* :mod:`.report` -- the comparison report of ``tools/compare.py``
  (imported lazily: it needs matplotlib).
"""
from .functional import (CLASS_METRICS, CONVENTION, SUMMARY_METRICS,
                         class_scores, confusion_matrix,
                         metrics_from_confusion, summary_from_counts)
from .iou_metric import SegregIoUMetric, sparse_confusion
from .metrics_file import (METRICS_SCHEMA_VERSION, MetricsFileError,
                           format_table, load_metrics, write_metrics_folder)
from .per_image import PerImageStats
from .rate_metrics import SegregRateMetric  # noqa: F401

__all__ = [
    'CLASS_METRICS', 'CONVENTION', 'SUMMARY_METRICS', 'class_scores',
    'confusion_matrix', 'metrics_from_confusion', 'summary_from_counts',
    'SegregIoUMetric', 'sparse_confusion', 'METRICS_SCHEMA_VERSION',
    'MetricsFileError', 'format_table', 'load_metrics',
    'write_metrics_folder', 'PerImageStats'
]
