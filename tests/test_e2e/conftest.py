"""COCO-Stuff data roots made by tools/convert_coco_stuff.py, once a session.

Each fixture writes a few scenes in one official download format into a
temporary folder, runs the converter on it as documented in data/README.md,
and returns the converted data root:

* ``coco164k_root``: ``stuffthingmaps_trainval2017``-style indexed PNGs
  (pixel = COCO-Stuff id - 1, 255 unlabeled) and COCO 2017 JPEGs ->
  ``images/{train,val}2017`` + ``annotations/{train,val}2017``;
* ``coco10k_root``: COCO-Stuff10k v1.1 (``images/``, ``annotations/*.mat``
  with ``S`` = id, ``imageLists/{train,test}.txt``) ->
  ``images/{train,test}2014`` + ``annotations/{train,test}2014``;
* ``stuffonly_root``: ``stuff_{train,val}2017.json`` (RLE, "other" = 183 on
  thing pixels) -> the 92-class stuff-only layout of ``*2017`` splits.

The scenes are realistic in size and structure, not in content: 640x480,
480x640, 640x427 and 500x375 JPEGs showing a sky band, a middle band
(building / tree / mountain), a ground band (grass / road / sand / sea) and
two to four elliptical objects (person, car, dog, bicycle, ...), one colour
per class plus shading and noise; thin unlabeled rings around the objects as
in the official maps, and in some 164k / 10k scenes a "street sign", one of
the eleven thing ids without masks, which the converter must drop to 255.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import sys
from typing import Dict, List

import cv2
import numpy as np
import pytest
from PIL import Image

from segreg.datasets.coco_stuff import COCO_STUFF_ID_TO_NAME, OTHER_ID

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')

ID = {name: cid for cid, name in COCO_STUFF_ID_TO_NAME.items()}
SKY = ('sky-other', 'clouds')
MIDDLE = ('building-other', 'tree', 'mountain', 'house')
GROUND = ('grass', 'road', 'sand', 'sea', 'pavement', 'snow')
THINGS = ('person', 'car', 'dog', 'bicycle', 'bench', 'bird', 'umbrella')
UNUSED_THING = 'street sign'  # COCO id 12: no masks, converted to 255

#: (width, height) of the scenes, in the order they are used.
SIZES = ((640, 480), (480, 640), (640, 427), (500, 375))


def scene_ids(w: int, h: int, rng: np.random.Generator,
              unused_thing: bool) -> np.ndarray:
    """A COCO-Stuff id map (0 = unlabeled) of one outdoor scene."""
    ids = np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[:h, :w]
    horizon = (rng.uniform(0.25, 0.45) * h +
               0.05 * h * np.sin(xx / w * rng.uniform(2, 6)))
    ground = rng.uniform(0.55, 0.75) * h + 0.04 * h * np.cos(
        xx / w * rng.uniform(1, 4))
    ids[:] = ID[str(rng.choice(SKY))]
    ids[yy >= horizon] = ID[str(rng.choice(MIDDLE))]
    ids[yy >= ground] = ID[str(rng.choice(GROUND))]
    names = list(rng.choice(THINGS, size=rng.integers(2, 5), replace=False))
    if unused_thing:
        names.append(UNUSED_THING)
    for name in names:
        cy, cx = rng.uniform(0.35, 0.85) * h, rng.uniform(0.1, 0.9) * w
        ry, rx = rng.uniform(0.05, 0.2) * h, rng.uniform(0.04, 0.15) * w
        d = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2
        ids[(d > 1) & (d <= 1.15)] = 0  # unlabeled border, as annotated
        ids[d <= 1] = ID[name]
    return ids


def scene_image(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A BGR picture of an id map: a colour per class, shading, noise."""
    h, w = ids.shape
    palette = np.random.default_rng(7).integers(30, 226, (256, 3))
    img = palette[ids].astype(np.float32)
    shade = np.linspace(0.8, 1.15, h, dtype=np.float32)[:, None, None]
    img = img * shade + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_jpg(path: str, img: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def _scenes(n: int, seed: int, unused_thing_every: int = 0):
    rng = np.random.default_rng(seed)
    for k in range(n):
        w, h = SIZES[k % len(SIZES)]
        unused = bool(unused_thing_every) and k % unused_thing_every == 0
        ids = scene_ids(w, h, rng, unused)
        yield k, ids, scene_image(ids, rng)


def _convert(argv: List[str]) -> dict:
    """Run the converter's command line in this process; its summary."""
    if TOOLS not in sys.path:
        sys.path.insert(0, TOOLS)
    import convert_coco_stuff
    assert convert_coco_stuff.main(argv + ['--nproc', '1']) == 0
    out = argv[argv.index('-o') + 1]
    source = argv[argv.index('--source') + 1]
    with open(osp.join(out, f'convert_{source}_summary.json')) as f:
        return json.load(f)


#: train / val images of the 164k and stuff-only fixtures, train / test of 10k.
SPLIT_SIZES = {'train': 4, 'val': 2}


@pytest.fixture(scope='session')
def coco164k_root(tmp_path_factory) -> str:
    """``data/coco_stuff164k`` converted from stuffthingmaps PNGs."""
    raw = tmp_path_factory.mktemp('raw164k')
    seed = 0
    for split, n in (('train2017', SPLIT_SIZES['train']),
                     ('val2017', SPLIT_SIZES['val'])):
        os.makedirs(raw / 'stuffthingmaps' / split)
        for k, ids, img in _scenes(n, seed, unused_thing_every=2):
            name = f'{1000 * seed + k + 1:012d}'
            # official maps: 'P' PNGs, value = id - 1, 255 unlabeled
            png = np.where(ids == 0, 255, ids - 1).astype(np.uint8)
            im = Image.fromarray(png, mode='P')
            im.putpalette(list(np.random.default_rng(1).integers(
                0, 256, 768, dtype=np.uint8)))
            im.save(raw / 'stuffthingmaps' / split / f'{name}.png')
            _write_jpg(str(raw / 'coco' / split / f'{name}.jpg'), img)
        seed += 1
    out = str(raw / 'coco_stuff164k')
    summary = _convert(['--source', '164k', str(raw / 'stuffthingmaps'),
                        '--img-dir', str(raw / 'coco'), '-o', out])
    assert summary['splits']['train2017']['converted'] == SPLIT_SIZES['train']
    assert summary['splits']['val2017']['images'] == {
        'done': SPLIT_SIZES['val']}
    return out


@pytest.fixture(scope='session')
def coco10k_root(tmp_path_factory) -> str:
    """``data/coco_stuff10k`` converted from the v1.1 MAT annotations."""
    from scipy.io import savemat
    raw = tmp_path_factory.mktemp('raw10k') / 'cocostuff-10k-v1.1'
    for sub in ('images', 'annotations', 'imageLists'):
        os.makedirs(raw / sub)
    for seed, (lst, n) in enumerate((('train', SPLIT_SIZES['train']),
                                     ('test', SPLIT_SIZES['val']))):
        names = []
        for k, ids, img in _scenes(n, 10 + seed, unused_thing_every=3):
            name = f'COCO_train2014_{100 * seed + k + 77:012d}'
            names.append(name)
            savemat(str(raw / 'annotations' / f'{name}.mat'),
                    {'S': ids.astype(np.uint16),
                     'names': np.array(['unlabeled'], dtype=object)})
            _write_jpg(str(raw / 'images' / f'{name}.jpg'), img)
        (raw / 'imageLists' / f'{lst}.txt').write_text('\n'.join(names) +
                                                       '\n')
    out = str(raw.parent / 'coco_stuff10k')
    summary = _convert(['--source', '10k', str(raw), '-o', out])
    assert summary['splits']['test2014']['converted'] == SPLIT_SIZES['val']
    return out


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': r['size'], 'counts': r['counts'].decode('ascii')}


@pytest.fixture(scope='session')
def stuffonly_root(tmp_path_factory) -> str:
    """``data/coco_stuff_stuffonly`` converted from the stuff JSONs."""
    raw = tmp_path_factory.mktemp('rawjson')
    os.makedirs(raw / 'stuff')
    cats = [{'id': i, 'name': COCO_STUFF_ID_TO_NAME.get(i, 'other'),
             'supercategory': 'stuff'} for i in range(92, OTHER_ID + 1)]
    ann_id = 1
    for seed, (split, n) in enumerate((('train2017', SPLIT_SIZES['train']),
                                       ('val2017', SPLIT_SIZES['val']))):
        images: List[Dict] = []
        anns: List[Dict] = []
        for k, ids, img in _scenes(n, 20 + seed):
            img_id = 1000 * seed + k + 1
            fname = f'{img_id:012d}.jpg'
            h, w = ids.shape
            images.append({'id': img_id, 'file_name': fname, 'height': h,
                           'width': w})
            stuff = np.where((ids >= 1) & (ids <= 91), OTHER_ID, ids)
            for cid in np.unique(stuff):
                if cid == 0:
                    continue
                mask = stuff == cid
                anns.append({'id': ann_id, 'image_id': img_id,
                             'category_id': int(cid), 'iscrowd': 0,
                             'area': int(mask.sum()),
                             'segmentation': _rle(mask)})
                ann_id += 1
            _write_jpg(str(raw / 'coco' / split / fname), img)
        with open(raw / 'stuff' / f'stuff_{split}.json', 'w') as f:
            json.dump({'images': images, 'annotations': anns,
                       'categories': cats}, f)
    out = str(raw / 'coco_stuff_stuffonly')
    summary = _convert(['--source', 'json', str(raw / 'stuff'), '--img-dir',
                        str(raw / 'coco'), '-o', out])
    assert summary['num_classes'] == 92
    assert summary['classes'][0]['pixels'] > 0  # "other" is labelled
    return out

