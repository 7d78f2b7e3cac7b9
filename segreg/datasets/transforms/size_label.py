"""The paper's image-level "size" label, and packing it for the model.

Ravi et al. (AAAI 2020) regularize the F1 score of one binary label per image
(docs/losses.md, ``SMeasureLoss``; the authors' code is
``lib/datasets/coco_stuff_f1.py`` of abhay-venkatesh/f1-cv):

* a class present in the mask is *big* when its pixel fraction is
  **strictly greater** than its threshold: ``background_threshold`` (0.95)
  for the background class ``background_index`` (0) and ``threshold``
  (0.05) for every other class;
* the image is **positive (1)** when at least half of its present classes
  are big (``2 * n_big >= n_present``), otherwise negative (0).

segreg's convention, where the paper's code is silent: pixels equal to
``ignore_index`` are excluded from both the fractions (the denominator is the
number of labelled pixels) and the set of present classes; an image without
a single labelled pixel is negative (0).

Where the label ends up (read by ``SMeasureLoss`` and its head):

* ``SizeLabel`` writes ``results['size_label']`` (a Python ``int``, 0 or 1);
* ``PackSegInputsWithMeta`` (or ``PackSegInputs`` with those names added to
  ``meta_keys``) copies it, together with the dataset index
  ``results['sample_idx']`` that mmengine's datasets set, into the data
  sample's metainfo: ``data_sample.metainfo['size_label']`` and
  ``data_sample.metainfo['sample_idx']``.

Put ``SizeLabel`` right after ``LoadAnnotations`` (before random resizing and
cropping), so the label is a fixed property of the training image, as the
per-image dual variables indexed by ``sample_idx`` require; the mask it sees
is already mapped by the dataset's ``label_map`` / ``reduce_zero_label``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

#: Keys of the size label and the sample index in results / metainfo.
SIZE_LABEL_KEY = 'size_label'
SAMPLE_IDX_KEY = 'sample_idx'


def compute_size_label(seg_map: np.ndarray,
                       threshold: float = 0.05,
                       background_index: Optional[int] = 0,
                       background_threshold: float = 0.95,
                       ignore_index: int = 255) -> int:
    """The paper's binary size label of one segmentation mask.

    Args:
        seg_map (np.ndarray): Integer class map, any shape (usually (H, W)),
            non-negative values.
        threshold (float): Pixel fraction above which a (non-background)
            class counts as big. Default 0.05.
        background_index (int, optional): The class with its own threshold
            (the paper: class 0). ``None``: every class uses ``threshold``.
        background_threshold (float): Threshold of ``background_index``.
            Default 0.95.
        ignore_index (int): Label of pixels left out of the fractions and of
            the present classes. Default 255.

    Returns:
        int: 1 if at least half of the present classes are big, else 0
        (also 0 when no pixel is labelled).
    """
    labels = np.asarray(seg_map).ravel()
    labels = labels[labels != ignore_index]
    if labels.size == 0:
        return 0
    if labels.min() < 0:
        raise ValueError('seg_map holds negative labels other than '
                         f'ignore_index={ignore_index}')
    counts = np.bincount(labels.astype(np.int64, copy=False))
    present = np.flatnonzero(counts)
    fractions = counts[present] / labels.size
    thresholds = np.full(present.shape, float(threshold))
    if background_index is not None:
        thresholds[present == background_index] = background_threshold
    num_big = int(np.count_nonzero(fractions > thresholds))
    return int(2 * num_big >= present.size)


@TRANSFORMS.register_module()
class SizeLabel(BaseTransform):
    """Add the paper's per-image binary size label to the results dict.

    Required keys: ``gt_seg_map`` (or ``seg_key``).
    Added keys: ``size_label`` (or ``key``): ``int`` 0 or 1.

    See :func:`compute_size_label` for the rule and the module docstring for
    where to place it and how it reaches the model.

    Args:
        threshold (float): Big-class threshold of ordinary classes (0.05).
        background_index (int, optional): Class with its own threshold (0:
            "other" in the stuff-only encoding; set it for other label sets,
            e.g. ``None`` for the 171-class COCO-Stuff, where class 0 is
            "person").
        background_threshold (float): Its threshold (0.95).
        ignore_index (int): Ignored label (255).
        key (str): Output key. Default ``'size_label'``.
        seg_key (str): Mask key. Default ``'gt_seg_map'``.
    """

    def __init__(self,
                 threshold: float = 0.05,
                 background_index: Optional[int] = 0,
                 background_threshold: float = 0.95,
                 ignore_index: int = 255,
                 key: str = SIZE_LABEL_KEY,
                 seg_key: str = 'gt_seg_map') -> None:
        if not 0.0 <= threshold <= 1.0 or not 0.0 <= background_threshold <= 1:
            raise ValueError('thresholds are pixel fractions in [0, 1]')
        self.threshold = threshold
        self.background_index = background_index
        self.background_threshold = background_threshold
        self.ignore_index = ignore_index
        self.key = key
        self.seg_key = seg_key

    def transform(self, results: dict) -> dict:
        if self.seg_key not in results:
            raise KeyError(
                f'SizeLabel needs results[{self.seg_key!r}]: put it after '
                'LoadAnnotations in the training pipeline')
        results[self.key] = compute_size_label(
            results[self.seg_key],
            threshold=self.threshold,
            background_index=self.background_index,
            background_threshold=self.background_threshold,
            ignore_index=self.ignore_index)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(threshold={self.threshold}, '
                f'background_index={self.background_index}, '
                f'background_threshold={self.background_threshold}, '
                f'ignore_index={self.ignore_index}, key={self.key!r})')


@TRANSFORMS.register_module()
class PackSegInputsWithMeta(PackSegInputs):
    """``PackSegInputs`` that also packs ``extra_meta_keys`` into metainfo.

    By default adds ``sample_idx`` and ``size_label`` to mmseg's default
    ``meta_keys``, so ``data_sample.metainfo['size_label']`` and
    ``data_sample.metainfo['sample_idx']`` reach the model. Keys missing from
    the results dict are skipped (as in ``PackSegInputs``).

    Args:
        extra_meta_keys (Sequence[str]): Keys added to ``meta_keys``.
        **kwargs: ``meta_keys`` and the rest, as for ``PackSegInputs``.
    """

    def __init__(self,
                 extra_meta_keys: Sequence[str] = (SAMPLE_IDX_KEY,
                                                   SIZE_LABEL_KEY),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        keys = list(self.meta_keys)
        keys += [k for k in extra_meta_keys if k not in keys]
        self.meta_keys = tuple(keys)
