"""The demo data generator: deterministic, COCO-Stuff layout, imbalanced."""
from __future__ import annotations

import glob
import hashlib
import os.path as osp

import numpy as np

from mmengine.registry import DefaultScope

from segreg.datasets.demo_data import (DEMO_CLASSES, DEMO_TRAIN_IDS,
                                       generate_demo_dataset)

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]


def _digest(root: str) -> str:
    h = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(root, '**', '*.*'), recursive=True)):
        if path.endswith('.json'):
            continue
        h.update(osp.relpath(path, root).encode())
        with open(path, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    generate_demo_dataset(a, 6, 2, seed=3, progress=False)
    generate_demo_dataset(b, 6, 2, seed=3, progress=False)
    generate_demo_dataset(c, 6, 2, seed=4, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_layout_and_label_values(demo_data_root):
    imgs = sorted(glob.glob(osp.join(demo_data_root, 'images', 'train2017',
                                     '*.jpg')))
    anns = sorted(glob.glob(osp.join(demo_data_root, 'annotations',
                                     'train2017', '*_labelTrainIds.png')))
    assert len(imgs) == len(anns) == 16
    assert len(glob.glob(osp.join(demo_data_root, 'images', 'val2017',
                                  '*.jpg'))) == 8
    allowed = set(DEMO_TRAIN_IDS.values()) | {255}
    import cv2
    for ann in anns:
        label = cv2.imread(ann, cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.ndim == 2
        assert set(np.unique(label).tolist()) <= allowed


def test_loads_with_mmseg_coco_stuff_dataset(demo_data_root):
    import segreg  # noqa: F401
    from mmseg.datasets import COCOStuffDataset
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = COCOStuffDataset(
            data_root=demo_data_root,
            metainfo=dict(classes=DEMO_CLASSES),
            data_prefix=dict(img_path='images/val2017',
                             seg_map_path='annotations/val2017'),
            pipeline=PIPELINE)
    assert len(ds) == 8
    assert ds.metainfo['classes'] == DEMO_CLASSES
    sample = ds[0]
    seg = sample['gt_seg_map']
    # mapped to 0..11 and 255 through mmseg's label_map
    assert set(np.unique(seg).tolist()) <= set(range(12)) | {255}
    assert sample['img'].shape[:2] == seg.shape == (128, 128)


def test_rare_classes_are_rare_but_present():
    from segreg.datasets.demo_data import _sample_rng, render_sample
    counts = np.zeros(256, np.int64)
    for i in range(60):
        _, label = render_sample(_sample_rng(0, 'train', i))
        counts += np.bincount(label.ravel(), minlength=256)
    frac = {c: counts[DEMO_TRAIN_IDS[c]] / counts[:255].sum()
            for c in DEMO_CLASSES}
    assert all(v > 0 for v in frac.values()), frac
    assert frac['sky-other'] > 0.2
    for rare in ('frisbee', 'sports ball', 'traffic light'):
        assert frac[rare] < 0.002, (rare, frac[rare])
    assert counts[255] > 0  # some unlabelled pixels, as in COCO-Stuff


def test_aerial_kind_is_another_dataset_with_its_own_classes(tmp_path):
    import segreg  # noqa: F401
    from mmseg.datasets import COCOStuffDataset

    from segreg.datasets.aerial_data import AERIAL_CLASSES, AERIAL_TRAIN_IDS
    root = str(tmp_path / 'aerial')
    meta = generate_demo_dataset(root, 6, 3, seed=0, progress=False,
                                 kind='aerial')
    assert meta['classes'] == list(AERIAL_CLASSES)
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = COCOStuffDataset(
            data_root=root, metainfo=dict(classes=AERIAL_CLASSES),
            data_prefix=dict(img_path='images/train2017',
                             seg_map_path='annotations/train2017'),
            pipeline=PIPELINE)
    assert len(ds) == 6
    seen = set()
    for i in range(len(ds)):
        seg = ds[i]['gt_seg_map']
        assert seg.shape == (96, 96)
        seen |= set(np.unique(seg).tolist())
    assert seen <= set(range(len(AERIAL_CLASSES))) | {255}
    assert len(seen - {255}) >= 4
    assert len(set(AERIAL_TRAIN_IDS.values())) == len(AERIAL_CLASSES)


def test_unknown_kind_is_refused(tmp_path):
    import pytest
    with pytest.raises(ValueError, match='unknown demo kind'):
        generate_demo_dataset(str(tmp_path), 1, 1, kind='nope',
                              progress=False)
