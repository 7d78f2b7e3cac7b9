"""segreg.datasets.transforms: SizeLabel (+ packing) and the AlbuSeg bridge."""
from __future__ import annotations

import os
import os.path as osp

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import segreg  # noqa: F401  (registers the transforms)
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS
from segreg.datasets.transforms import (AlbuSeg, PackSegInputsWithMeta,
                                        SizeLabel, compute_size_label)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# ------------------------------------------------------------- size label


def _reference(seg, thr=0.05, bg=0, bg_thr=0.95, ignore=255):
    """The rule written out plainly (one class at a time)."""
    valid = [int(v) for v in np.asarray(seg).ravel() if v != ignore]
    if not valid:
        return 0
    present = sorted(set(valid))
    big = 0
    for c in present:
        frac = valid.count(c) / len(valid)
        big += frac > (bg_thr if c == bg else thr)
    return int(big >= len(present) / 2)


def _map(counts: dict, ignore: int = 0) -> np.ndarray:
    parts = [np.full(n, c, np.uint8) for c, n in counts.items()]
    parts.append(np.full(ignore, 255, np.uint8))
    return np.concatenate(parts).reshape(1, -1)


@pytest.mark.parametrize('counts,ignore,expected', [
    ({0: 100}, 0, 1),                       # only background, 100% > 95%
    ({0: 90, 3: 10}, 0, 1),                 # bg small, 3 big: 1 of 2 -> tie
    ({0: 91, 1: 3, 2: 3, 3: 3}, 0, 0),      # nothing big
    ({0: 94, 1: 6}, 0, 1),                  # bg 94% not big, 6% big: 1 of 2
    ({0: 19, 5: 1}, 0, 0),                  # 0.95, 0.05: not > thresholds
    ({0: 96, 7: 4}, 0, 1),                  # bg big, 7 small: 1 of 2
    ({0: 48, 5: 2}, 50, 1),                 # ignore excluded: bg = 96%
    ({}, 10, 0),                            # nothing labelled -> negative
    ({1: 30, 2: 30, 3: 30, 4: 10}, 0, 1),   # all 4 big (>5%)
    ({1: 97, 2: 1, 3: 1, 4: 1}, 0, 0),      # 1 of 4 big
])
def test_compute_size_label_cases(counts, ignore, expected):
    seg = _map(counts, ignore)
    assert compute_size_label(seg) == expected
    assert _reference(seg) == expected


def test_size_label_background_index_and_thresholds():
    seg = _map({0: 90, 3: 10})
    # with no special background class, class 0 at 90% is big: 2 of 2
    assert compute_size_label(seg, background_index=None) == 1
    seg = _map({0: 90, 3: 2, 4: 2, 5: 2, 6: 4})
    assert compute_size_label(seg) == 0                   # 0 of 5 big
    assert compute_size_label(seg, background_index=None) == 0  # 1 of 5
    assert compute_size_label(seg, threshold=0.01) == 1   # 4 of 5
    assert compute_size_label(seg, background_index=6,
                              background_threshold=0.5) == 0
    # the ignore value is configurable
    seg2 = np.where(_map({0: 48, 5: 2}, 50) == 255, 0, 0)
    assert compute_size_label(seg2, ignore_index=0) == 0  # all ignored


@settings(max_examples=60, deadline=None)
@given(seg=arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 7)),
                  elements=st.sampled_from([0, 1, 2, 3, 9, 255])),
       thr=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
       bg=st.sampled_from([None, 0, 3]))
def test_size_label_matches_reference(seg, thr, bg):
    assert compute_size_label(seg, threshold=thr, background_index=bg) == \
        _reference(seg, thr=thr, bg=bg)


def test_size_label_transform_requires_mask():
    t = SizeLabel()
    out = t(dict(gt_seg_map=_map({0: 96, 7: 4})))
    assert out['size_label'] == 1 and isinstance(out['size_label'], int)
    with pytest.raises(KeyError, match='LoadAnnotations'):
        t(dict(img=np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(ValueError):
        SizeLabel(threshold=5)


@pytest.fixture(scope='module')
def tiny_stuffonly(tmp_path_factory):
    """4 images in the stuff-only layout; labels 0-91 and 255."""
    init_default_scope('mmseg')  # as default_runtime's default_scope
    root = str(tmp_path_factory.mktemp('stuffonly'))
    rng = np.random.default_rng(0)
    labels = []
    for k in range(4):
        seg = np.zeros((24, 32), np.uint8)  # 'other' background
        if k % 2:  # a few small stuff regions -> negative
            for c in (5, 17, 40):
                y, x = rng.integers(0, 20), rng.integers(0, 28)
                seg[y:y + 3, x:x + 3] = c
        else:      # two big regions -> positive
            seg[:12] = 91
        seg[0, :4] = 255
        for sub, name, arr in (('images', f'{k:04d}.jpg',
                                rng.integers(0, 255, (24, 32, 3), np.uint8)),
                               ('annotations', f'{k:04d}_labelTrainIds.png',
                                seg)):
            d = osp.join(root, sub, 'train2017')
            os.makedirs(d, exist_ok=True)
            cv2.imwrite(osp.join(d, name), arr)
        labels.append(seg)
    return root, labels


def _dataset(root, pipeline):
    return DATASETS.build(dict(
        type='COCOStuffStuffOnlyDataset', data_root=root,
        data_prefix=dict(img_path='images/train2017',
                         seg_map_path='annotations/train2017'),
        pipeline=pipeline))


def test_size_label_reaches_data_sample_metainfo(tiny_stuffonly):
    root, labels = tiny_stuffonly
    for pack in (dict(type='PackSegInputsWithMeta'),
                 dict(type='PackSegInputs',  # the alternative: meta_keys
                      meta_keys=('img_path', 'seg_map_path', 'ori_shape',
                                 'img_shape', 'sample_idx', 'size_label'))):
        ds = _dataset(root, [dict(type='LoadImageFromFile'),
                             dict(type='LoadAnnotations'),
                             dict(type='SizeLabel'), pack])
        got = []
        for i in range(len(ds)):
            meta = ds[i]['data_samples'].metainfo
            assert meta['sample_idx'] == i
            assert meta['size_label'] == compute_size_label(labels[i])
            got.append(meta['size_label'])
        assert got == [1, 0, 1, 0]
    packer = PackSegInputsWithMeta(meta_keys=('img_path', ))
    assert packer.meta_keys == ('img_path', 'sample_idx', 'size_label')


def test_stuffonly_base_config_pipeline(tiny_stuffonly):
    from mmengine.config import Config
    root, labels = tiny_stuffonly
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets',
                 'coco-stuff-stuffonly.py'))
    ds_cfg = cfg.train_dataloader.dataset.to_dict()
    ds_cfg['data_root'] = root
    ds = DATASETS.build(ds_cfg)
    sample = ds[1]
    meta = sample['data_samples'].metainfo
    assert meta['size_label'] == 0 and meta['sample_idx'] == 1
    # RandomResize + RandomCrop(512): at most 512 a side (padding to the crop
    # happens later, in the data preprocessor); labels stay aligned
    h, w = sample['inputs'].shape[1:]
    assert h <= 512 and w <= 512
    assert tuple(sample['data_samples'].gt_sem_seg.data.shape[1:]) == (h, w)


# ------------------------------------------------------------ albumentations


def _aligned_sample(h=48, w=64, seed=0):
    """An image whose pixels encode their label (labels 1-50, 255 ignore)."""
    rng = np.random.default_rng(seed)
    seg = np.repeat(np.repeat(rng.integers(1, 51, (h // 8, w // 8)), 8, 0),
                    8, 1).astype(np.uint8)
    seg[5:9, 10:30] = 255
    img = np.stack([seg] * 3, axis=-1)
    return dict(img=img, gt_seg_map=seg.copy(), seg_fields=['gt_seg_map'],
                img_shape=(h, w), ori_shape=(h, w))


GEOMETRIC = [
    dict(type='HorizontalFlip', p=1.0),
    dict(type='Affine', rotate=(20, 30), scale=(0.8, 0.9),
         translate_percent=(0.1, 0.1), interpolation=cv2.INTER_NEAREST,
         p=1.0),
    dict(type='Rotate', limit=(15, 15), interpolation=cv2.INTER_NEAREST,
         p=1.0),
    dict(type='Perspective', scale=(0.1, 0.1), fit_output=False,
         interpolation=cv2.INTER_NEAREST, p=1.0),
    dict(type='PadIfNeeded', min_height=64, min_width=80, p=1.0),
    dict(type='GridDistortion', interpolation=cv2.INTER_NEAREST, p=1.0),
]


@pytest.mark.parametrize('cfg', GEOMETRIC, ids=[c['type'] for c in GEOMETRIC])
def test_albuseg_keeps_masks_aligned_and_ignore_ignored(cfg):
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='AlbuSeg', transforms=[cfg]))
    res = _aligned_sample()
    res['gt_extra'] = res['gt_seg_map'].astype(np.int64)
    res['seg_fields'].append('gt_extra')
    out = t(res)
    img, seg = out['img'], out['gt_seg_map']
    assert seg.shape == img.shape[:2] and seg.dtype == np.uint8
    assert out['img_shape'] == img.shape[:2]
    labelled = seg != 255
    # every labelled pixel carries the label of the image pixel it came from
    np.testing.assert_array_equal(img[..., 0][labelled], seg[labelled])
    # original ignore pixels stay ignore; new border pixels are ignore too
    assert (seg[img[..., 0] == 255] == 255).all()
    assert not (seg == 0).any(), 'border filled with class 0'
    np.testing.assert_array_equal(out['gt_extra'], seg.astype(np.int64))
    assert out['gt_extra'].dtype == np.int64


def test_mmseg_albu_fills_borders_with_class_0():
    """Why the bridge exists: mmseg's Albu + albumentations 2.x."""
    cfg = dict(type='Affine', rotate=(30, 30), p=1.0)
    out = TRANSFORMS.build(dict(type='Albu', transforms=[cfg]))(
        _aligned_sample())
    assert (out['gt_seg_map'] == 0).any()          # border became class 0
    ours = TRANSFORMS.build(dict(type='AlbuSeg', transforms=[cfg]))(
        _aligned_sample())
    assert not (ours['gt_seg_map'] == 0).any()
    # an explicit fill_mask is respected, dropouts keep fill_mask=None
    t = AlbuSeg([dict(type='Affine', rotate=(30, 30), fill_mask=7, p=1.0),
                 dict(type='CoarseDropout', p=1.0)])
    assert t.aug.transforms[0].fill_mask == 7
    assert t.aug.transforms[1].fill_mask is None


def test_albuseg_size_change_nested_and_colour():
    np.random.seed(3)
    t = AlbuSeg([
        dict(type='RandomResizedCrop', size=(32, 40), p=1.0),
        dict(type='OneOf', p=1.0, transforms=[
            dict(type='Affine', rotate=(10, 10), p=1.0),
            dict(type='Rotate', limit=(10, 10), p=1.0)]),
        dict(type='RandomBrightnessContrast', p=1.0),
    ])
    assert t.aug.transforms[1].transforms[0].fill_mask == 255
    out = t(_aligned_sample())
    assert out['img'].shape == (32, 40, 3)
    assert out['gt_seg_map'].shape == (32, 40)
    assert out['img_shape'] == (32, 40)
    with pytest.raises(KeyError, match='no transform'):
        AlbuSeg([dict(type='NoSuchTransform')])


def test_albuseg_bgr_rgb_roundtrip():
    """Colour transforms see RGB; the output is BGR again."""
    res = _aligned_sample()
    res['img'] = np.zeros_like(res['img'])
    res['img'][..., 0] = 200  # blue in BGR
    out = AlbuSeg([dict(type='ToGray', p=1.0)])(res)
    # ITU-R 601 luma of pure blue (RGB 0, 0, 200) is about 0.114 * 200
    assert abs(int(out['img'][0, 0, 0]) - 23) <= 2


def test_albuseg_follows_numpy_seed():
    t = AlbuSeg([dict(type='Affine', rotate=(-40, 40), p=1.0)])

    def run(seed):
        np.random.seed(seed)
        return [t(_aligned_sample())['gt_seg_map'] for _ in range(3)]

    a, b, c = run(1), run(1), run(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any((x != y).any() for x, y in zip(a, c))
    assert (a[0] != a[1]).any()  # a fresh draw at every call


def test_example_albu_config_pipeline_runs():
    from mmengine.config import Config
    path = osp.join(REPO, 'configs', 'deeplabv3plus',
                    'deeplabv3plus_r50-d8_albu_4xb4-80k_coco-stuff164k-'
                    '512x512.py')
    try:
        cfg = Config.fromfile(path)
    except FileNotFoundError as e:  # the lead's bases not there yet
        pytest.skip(str(e))
    albu = [t for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] == 'AlbuSeg']
    assert len(albu) == 1
    t = TRANSFORMS.build(albu[0])
    np.random.seed(0)
    for _ in range(8):
        out = t(_aligned_sample())
        seg = out['gt_seg_map']
        assert seg.shape == out['img'].shape[:2]
        assert not (seg == 0).any()
