"""The realistic benchmark (collage of real photographs): determinism,
layout, class frequencies, and the list of sources and licences."""
from __future__ import annotations

import glob
import hashlib
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine.registry import DefaultScope

from segreg.datasets import collage_data as cd
from segreg.datasets.demo_data import (DEMO_KINDS, _sample_rng,
                                       generate_demo_dataset)

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]


def _digest(root: str) -> dict:
    return {osp.relpath(p, root): hashlib.sha256(open(p, 'rb').read())
            .hexdigest() for p in sorted(glob.glob(osp.join(root, '*', '*',
                                                            '*')))}


def test_deterministic_from_the_seed_and_in_coco_stuff_layout(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    meta = generate_demo_dataset(a, 5, 2, seed=0, progress=False,
                                 kind='collage')
    generate_demo_dataset(b, 5, 2, seed=0, progress=False, kind='collage')
    generate_demo_dataset(c, 5, 2, seed=1, progress=False, kind='collage')
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db and len(da) == 14
    assert da != dc  # another seed, other images
    for split, n, off in (('train2017', 5, 0), ('val2017', 2, 500000)):
        for i in range(n):
            stem = f'{off + i:012d}'
            assert f'images/{split}/{stem}.jpg' in da
            assert f'annotations/{split}/{stem}_labelTrainIds.png' in da
    assert meta['kind'] == 'collage'
    assert meta['classes'] == list(cd.COLLAGE_CLASSES)
    assert DEMO_KINDS['collage'].size == (96, 96)


def test_train_ids_are_the_coco_stuff_ones():
    from segreg.datasets.coco_stuff import COCO_STUFF_CLASSES
    assert len(cd.COLLAGE_CLASSES) >= 10
    for name in cd.COLLAGE_CLASSES:
        assert COCO_STUFF_CLASSES[cd.COLLAGE_TRAIN_IDS[name]] == name


def test_class_frequencies_several_rare_and_unlabelled_pixels():
    counts = np.zeros(256)
    for i in range(150):
        image, label = cd.render_collage(_sample_rng(0, 'train', i,
                                                     'collage'))
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        counts += np.bincount(label.ravel(), minlength=256)
    assert set(np.nonzero(counts)[0]) <= set(
        cd.COLLAGE_TRAIN_IDS.values()) | {255}
    tot = sum(counts[t] for t in cd.COLLAGE_TRAIN_IDS.values())
    frac = {c: counts[t] / tot for c, t in cd.COLLAGE_TRAIN_IDS.items()}
    assert all(v > 0 for v in frac.values()), frac
    rare = [c for c, v in frac.items() if v < 0.01]
    assert len(rare) >= 3, frac
    assert sum(v < 0.03 for v in frac.values()) >= 6, frac
    for stuff in ('sky-other', 'wall-brick', 'grass', 'gravel', 'wood'):
        assert frac[stuff] > 0.05, (stuff, frac)
    assert counts[255] > 0


def test_every_class_has_a_documented_source_and_the_files_match():
    covered = set()
    for src in cd.COLLAGE_SOURCES:
        assert src.origin and src.licence and src.what, src
        covered |= set(src.classes)
    assert covered == set(cd.COLLAGE_CLASSES)
    paths = cd.check_assets()  # the installed files have the recorded hashes
    assert sorted(paths) == sorted(s.file for s in cd.COLLAGE_SOURCES)
    for src in cd.COLLAGE_SOURCES:
        assert hashlib.sha256(open(paths[src.file], 'rb').read()
                              ).hexdigest() == src.sha256


def test_a_changed_or_missing_asset_is_refused_by_name(tmp_path):
    for f, p in cd.check_assets().items():
        shutil.copy(p, tmp_path / f)
    with open(tmp_path / 'coins.png', 'ab') as fh:
        fh.write(b'x')
    with pytest.raises(ValueError, match='coins.png.*scikit-image==0.26.0'):
        cd.check_assets(str(tmp_path))
    (tmp_path / 'coins.png').unlink()
    with pytest.raises(FileNotFoundError, match='coins.png'):
        cd.check_assets(str(tmp_path))


def test_the_coin_cutouts_are_the_coins():
    coins = cd.load_assets()['coins']
    assert 20 <= len(coins) <= 30  # the photo shows 24 coins
    # round objects: a disc fills pi/4 = 0.785 of its box; a few coins are
    # darker in parts and come out ragged
    fill = np.array([c.mask.mean() for c in coins])
    assert np.all((fill > 0.5) & (fill < 0.85)), fill
    assert 0.7 < np.median(fill) < 0.8, fill


def test_mmseg_reads_it_with_the_config_class_list(tmp_path):
    import segreg  # noqa: F401
    from mmengine import Config
    from mmseg.datasets import COCOStuffDataset
    root = str(tmp_path / 'collage')
    generate_demo_dataset(root, 6, 2, seed=0, progress=False, kind='collage')
    cfg = Config.fromfile(osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', '_base_', 'datasets',
        'collage.py'))
    assert tuple(cfg.metainfo['classes']) == cd.COLLAGE_CLASSES
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = COCOStuffDataset(
            data_root=root, metainfo=dict(classes=cd.COLLAGE_CLASSES),
            data_prefix=dict(img_path='images/train2017',
                             seg_map_path='annotations/train2017'),
            pipeline=PIPELINE)
    seen = set()
    for i in range(len(ds)):
        seen |= set(np.unique(ds[i]['gt_seg_map']).tolist())
    assert seen <= set(range(len(cd.COLLAGE_CLASSES))) | {255}
    assert len(seen - {255}) >= 5
