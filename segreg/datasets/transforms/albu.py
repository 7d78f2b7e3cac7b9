"""Albumentations (2.x) in MMSegmentation pipelines: the ``AlbuSeg`` bridge.

mmseg's own ``Albu`` transform runs with albumentations 2.0.8, but for
segmentation it has four defects (pinned by tests/test_datasets/
test_transforms.py):

1. albumentations 2.x fills the border that geometric transforms (Affine,
   Rotate, ShiftScaleRotate, PadIfNeeded, Perspective, ElasticTransform,
   crops with padding, ...) create with ``fill_mask=0``, so those pixels get
   class 0 instead of being ignored; ``Albu`` passes that default through;
2. it leaves ``img_shape`` stale after a transform that changes the size;
3. it transforms only ``gt_seg_map``, not the other ``seg_fields``;
4. albumentations 2.x keeps its own random state (``Compose(seed=None)``
   draws from the OS), so runs are not reproducible under mmengine's
   ``randomness.seed``, and a Compose built before the dataloader forks
   would repeat the same augmentations in every worker.

``AlbuSeg`` fixes them: it sets ``fill_mask=ignore_index`` (255) on every
transform whose ``fill_mask`` defaults to a number, unless the config sets
it; it moves every seg field together with the image (albumentations' masks
use nearest-neighbour interpolation); it updates ``img_shape``; and it
re-seeds the albumentations pipeline from NumPy's global generator at each
call, which segreg's runner seeds per sample from (run seed, stream
position, index) with ``SeededInfiniteSampler`` (docs/reliability.md), so
its draws survive ``--resume`` and do not depend on ``num_workers``.
"""
from __future__ import annotations

import copy
import inspect
from typing import List, Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

try:
    import albumentations
except ImportError:  # pragma: no cover - albumentations is a dependency
    albumentations = None


def _fill_mask_default(cls) -> Optional[object]:
    """The default ``fill_mask`` of an albumentations class, or None."""
    try:
        param = inspect.signature(cls.__init__).parameters.get('fill_mask')
    except (TypeError, ValueError):  # pragma: no cover
        return None
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def build_albu(cfg: dict, ignore_index: int = 255):
    """Build an albumentations transform from a config dict.

    ``type`` is a class name in ``albumentations`` (or a class); nested
    ``transforms`` lists (``OneOf``, ``SomeOf``, ``Sequential``) are built
    recursively. Transforms whose ``fill_mask`` defaults to a number get
    ``fill_mask=ignore_index`` unless ``cfg`` sets it; those whose
    ``fill_mask`` defaults to ``None`` (the dropouts: mask left as is) are not
    touched.
    """
    if albumentations is None:  # pragma: no cover
        raise ImportError('AlbuSeg needs albumentations (pip install '
                          'albumentations)')
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'an albumentations config is a dict with "type", '
                        f'got {cfg!r}')
    args = dict(cfg)
    obj_type = args.pop('type')
    if isinstance(obj_type, str):
        try:
            obj_cls = getattr(albumentations, obj_type)
        except AttributeError:
            raise KeyError(f'albumentations {albumentations.__version__} has '
                           f'no transform {obj_type!r}') from None
    elif inspect.isclass(obj_type):
        obj_cls = obj_type
    else:
        raise TypeError(f'type must be a str or a class, got {obj_type!r}')
    if 'transforms' in args:
        args['transforms'] = [
            build_albu(t, ignore_index) for t in args['transforms']
        ]
    default = _fill_mask_default(obj_cls)
    if 'fill_mask' not in args and isinstance(default, (int, float)):
        args['fill_mask'] = ignore_index
    return obj_cls(**args)


@TRANSFORMS.register_module()
class AlbuSeg(BaseTransform):
    """Apply an albumentations pipeline to the image and all seg maps.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``, every key
    in ``seg_fields`` (``gt_seg_map`` after ``LoadAnnotations``).

    Example (training pipeline, after ``LoadAnnotations``)::

        dict(type='AlbuSeg', transforms=[
            dict(type='Affine', rotate=(-10, 10), scale=(0.9, 1.1), p=0.5),
            dict(type='RandomBrightnessContrast', p=0.3),
            dict(type='OneOf', p=0.2, transforms=[
                dict(type='GaussianBlur', blur_limit=(3, 5)),
                dict(type='MotionBlur', blur_limit=(3, 5))]),
        ])

    Args:
        transforms (list[dict]): albumentations transforms as config dicts
            (``type`` = class name in ``albumentations``).
        ignore_index (int): Value of ignored label pixels; written into
            border/padding pixels of seg maps (see :func:`build_albu`).
            Default 255.
        bgr_to_rgb (bool): Convert the BGR image that mmcv loads to RGB
            before albumentations and back after (colour transforms assume
            RGB). Default True.
        reseed (bool): Re-seed albumentations from ``np.random`` at every
            call (reproducible under mmengine's seeding, distinct per
            dataloader worker). Default True.
    """

    def __init__(self,
                 transforms: List[dict],
                 ignore_index: int = 255,
                 bgr_to_rgb: bool = True,
                 reseed: bool = True) -> None:
        self.transforms = copy.deepcopy(list(transforms))
        self.ignore_index = ignore_index
        self.bgr_to_rgb = bgr_to_rgb
        self.reseed = reseed
        self.aug = albumentations.Compose(
            [build_albu(t, ignore_index) for t in self.transforms])

    def transform(self, results: dict) -> dict:
        img = results['img']
        if self.bgr_to_rgb and img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        fields = [k for k in results.get('seg_fields', []) if k in results]
        masks, dtypes = [], []
        for key in fields:
            seg = results[key]
            dtypes.append(seg.dtype)
            if seg.dtype != np.uint8:
                if seg.size and (seg.min() < 0 or seg.max() > 255):
                    raise ValueError(f'AlbuSeg: {key} has values outside '
                                     '0-255')
                seg = seg.astype(np.uint8)
            masks.append(seg)
        if self.reseed:
            self.aug.set_random_seed(int(np.random.randint(0, 2**31 - 1)))
        data = dict(image=img)
        if masks:
            data['masks'] = masks
        out = self.aug(**data)
        img = out['image']
        if self.bgr_to_rgb and img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        for key, seg, dtype in zip(fields, out.get('masks', []), dtypes):
            seg = np.asarray(seg)
            if seg.shape[:2] != img.shape[:2]:  # pragma: no cover
                raise RuntimeError(f'AlbuSeg: {key} {seg.shape} no longer '
                                   f'matches the image {img.shape}')
            results[key] = seg.astype(dtype, copy=False)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(transforms={self.transforms}, '
                f'ignore_index={self.ignore_index}, '
                f'bgr_to_rgb={self.bgr_to_rgb})')
