"""The with/without comparison report behind ``tools/compare.py``.

Input: labelled runs (``arm -> [folder, ...]``, one folder per seed), each a
training work dir or a metrics folder written by ``tools/test.py``. Output in
one folder::

    report.md, report.html   the same content; the HTML embeds its figures
                             (base64) and opens offline
    figures/*.png            summary, confusion, per-class delta, curves
    figures/grid/*.png       the tiles of the qualitative grid
    configs/*.py             the config dump of each run (as trained)
    summary.json             the numbers of the tables, machine-readable

What it computes (numbers in percent):

* per arm: mean over seeds of each summary metric with a Student-t 95% CI
  (needs 2+ seeds), and a 95% image-bootstrap CI (resampling test images,
  :mod:`segreg.evaluation.stats`); the mIoU of the rarest / middle / most
  frequent third of the classes, with the same intervals;
* per arm vs the baseline arm: difference of means, paired t-test over seeds
  (seed i vs seed i; Welch's test if seeds cannot be paired) and a paired
  image-bootstrap CI and p-value (the same resampled images for both arms);
* a qualitative grid (image | ground truth | baseline | arms) of images
  chosen by a stated rule, from predictions saved by ``tools/test.py
  --save-preds``;
* per-class IoU differences and confusion matrices, classes sorted by
  ground-truth pixel frequency, rarest first;
* training curves from ``<work_dir>/<timestamp>/vis_data/scalars.json``: loss
  terms, validation mIoU, and every other logged scalar (dual variables...);
* the config dump and the commands of each run.

Problems with the input never stop the report: each run or piece that cannot
be used is left out and listed under "Left out" with the reason.

Modules, in the order of the pipeline: :mod:`.runs` (reading folders),
:mod:`.analysis` (statistics), :mod:`.qualitative` (image choice and tiles),
:mod:`.figures` (matplotlib), :mod:`.document` (Markdown / HTML),
:mod:`.sections` (one function per section of the page), :mod:`.build`
(:func:`build_report`: load, analyse, write the folder). :mod:`.sweep`
reads several study roots, one per batch size, into the tables of the
batch-size sweep (:func:`write_sweep`, ``tools/ablate.py --sweep``).
"""
from .analysis import (BIN_NAMES, ArmStats, BinStats, DeltaStats, analyse,
                       class_order, frequency_bins)
from .build import MAX_HEATMAP_CLASSES, ReportResult, build_report
from .document import Document
from .figures import fig_class_delta, fig_confusion, fig_curves, fig_summary
from .qualitative import choose_images, per_image_miou
from .runs import (CLASS_PIXELS_FILE, RUN_RECORD_FILE, ReportError, Run,
                   find_metrics_dir, load_run, load_scalars, parse_run_specs)
from .sweep import write_sweep

__all__ = [
    'BIN_NAMES', 'ArmStats', 'BinStats', 'DeltaStats', 'Document', 'analyse',
    'class_order', 'frequency_bins', 'MAX_HEATMAP_CLASSES', 'ReportResult',
    'build_report', 'fig_class_delta', 'fig_confusion', 'fig_curves',
    'fig_summary', 'choose_images', 'per_image_miou', 'CLASS_PIXELS_FILE',
    'RUN_RECORD_FILE', 'ReportError', 'Run', 'find_metrics_dir', 'load_run',
    'load_scalars', 'parse_run_specs', 'write_sweep'
]
