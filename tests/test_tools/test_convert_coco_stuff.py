"""tools/convert_coco_stuff.py on tiny fixtures in the official formats.

Every fixture is generated here: stuffthingmaps PNGs (ids 0-181 + 255), a
COCO-Stuff10k ``.mat`` (scipy.io.savemat) with its image lists, and stuff /
instances JSONs whose RLEs are made by pycocotools.mask.encode. Expected train
ids are derived in the tests from the official id lists, independently of
segreg's lookup tables.
"""
from __future__ import annotations

import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
UNUSED = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91}  # COCO ids, no masks
USED_IDS = [i for i in range(1, 183) if i not in UNUSED]  # 171 ids


def _expected_from_coco_ids(ids: np.ndarray) -> np.ndarray:
    """COCO-Stuff id (0 = unlabeled) -> 171-class train id, the long way."""
    rank = {cid: t for t, cid in enumerate(USED_IDS)}
    out = np.full(ids.shape, 255, np.uint8)
    for cid, t in rank.items():
        out[ids == cid] = t
    return out


@pytest.fixture(scope='module')
def conv():
    if TOOLS not in sys.path:
        sys.path.insert(0, TOOLS)
    import convert_coco_stuff
    return convert_coco_stuff


def _read(path):
    return np.asarray(Image.open(path))


def _jpg(path, h, w, seed):
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)
    cv2.imwrite(path, img)


# ------------------------------------------------------------------ 164k


def _make_164k(root, rng, n_train=4, n_val=2):
    """stuffthingmaps: PNG values = COCO id - 1 (0-181), 255 unlabeled."""
    ann, img = osp.join(root, 'ann'), osp.join(root, 'coco')
    expected = {}
    values = np.array(list(range(182)) + [255])  # includes the unused ids
    for split, n in (('train2017', n_train), ('val2017', n_val)):
        os.makedirs(osp.join(ann, split))
        for k in range(n):
            name = f'{k + (0 if split == "train2017" else 900000):012d}'
            h, w = 17 + k, 23
            src = rng.choice(values, size=(h, w)).astype(np.uint8)
            if k == 0:  # official maps are indexed ('P') PNGs
                im = Image.fromarray(src, mode='P')
                im.putpalette(list(rng.integers(0, 255, 768)))
                im.save(osp.join(ann, split, name + '.png'))
            else:
                Image.fromarray(src).save(osp.join(ann, split, name + '.png'))
            _jpg(osp.join(img, split, name + '.jpg'), h, w, k)
            ids = np.where(src == 255, 0, src.astype(np.int64) + 1)
            expected[(split, name)] = _expected_from_coco_ids(ids)
    return ann, img, expected


def test_luts_agree_with_mmseg_converter():
    """Our tables equal mmseg's own 164k and 10k converter dictionaries."""
    from segreg.datasets.coco_stuff import (COCO_ID_TO_TRAIN_ID,
                                            STUFFTHINGMAP_TO_TRAIN_ID)
    import mmseg
    base = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools',
                    'dataset_converters')
    for fname, lut, shift in (('coco_stuff164k.py', STUFFTHINGMAP_TO_TRAIN_ID,
                               0), ('coco_stuff10k.py', COCO_ID_TO_TRAIN_ID,
                                    1)):
        path = osp.join(base, fname)
        if not osp.isfile(path):
            pytest.skip('mmseg converters not shipped')
        spec = importlib.util.spec_from_file_location('_m' + fname[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        table = dict(mod.clsID_to_trID)
        if shift:  # mmseg's 10k writes 1-171 with 0 = unlabeled
            table = {k: (v - 1 if v else 255) for k, v in table.items()}
        for src in range(256):
            assert lut[src] == table.get(src, 255), (fname, src)
    assert (STUFFTHINGMAP_TO_TRAIN_ID != 255).sum() == 171


def test_convert_164k_pixel_exact_resumable_and_repairs(conv, tmp_path):
    rng = np.random.default_rng(0)
    ann, img, expected = _make_164k(str(tmp_path), rng)
    out = str(tmp_path / 'out')
    argv = ['--source', '164k', ann, '--img-dir', img, '-o', out]
    assert conv.main(argv + ['--nproc', '2']) == 0
    for (split, name), exp in expected.items():
        got = _read(osp.join(out, 'annotations', split,
                             name + '_labelTrainIds.png'))
        np.testing.assert_array_equal(got, exp)
        link = osp.join(out, 'images', split, name + '.jpg')
        assert osp.islink(link) and osp.samefile(
            link, osp.join(img, split, name + '.jpg'))
    with open(osp.join(out, 'convert_164k_summary.json')) as f:
        summary = json.load(f)
    allexp = np.concatenate([e.ravel() for e in expected.values()])
    hist = np.bincount(allexp, minlength=256)
    assert [c['pixels'] for c in summary['classes']] == hist[:171].tolist()
    assert summary['ignore_pixels'] == hist[255]
    assert summary['splits']['train2017']['converted'] == 4
    assert summary['splits']['val2017']['labels'] == 2

    # resume: nothing to do, files untouched
    first = osp.join(out, 'annotations', 'train2017',
                     '000000000001_labelTrainIds.png')
    mtime = os.stat(first).st_mtime_ns
    assert conv.main(argv + ['--nproc', '1']) == 0
    with open(osp.join(out, 'convert_164k_summary.json')) as f:
        summary2 = json.load(f)
    assert summary2['splits']['train2017']['skipped'] == 4
    assert summary2['splits']['train2017']['images'] == {'skipped': 4}
    assert summary2['classes'] == summary['classes']
    assert os.stat(first).st_mtime_ns == mtime

    # a damaged output (truncated) or a wrong one is rewritten
    with open(first, 'r+b') as f:
        f.truncate(30)
    bad = osp.join(out, 'annotations', 'val2017',
                   '000000900000_labelTrainIds.png')
    cv2.imwrite(bad, np.full((5, 5), 7, np.uint8))  # wrong size
    assert conv.main(argv + ['--nproc', '1']) == 0
    with open(osp.join(out, 'convert_164k_summary.json')) as f:
        summary3 = json.load(f)
    assert summary3['splits']['train2017']['repaired'] == 1
    assert summary3['splits']['val2017']['repaired'] == 1
    for (split, name), exp in expected.items():
        np.testing.assert_array_equal(
            _read(osp.join(out, 'annotations', split,
                           name + '_labelTrainIds.png')), exp)

    # images that cannot be found make the run fail (labels still written)
    os.remove(osp.join(img, 'val2017', '000000900001.jpg'))
    out2 = str(tmp_path / 'out2')
    assert conv.main(['--source', '164k', ann, '--img-dir', img, '-o', out2,
                      '--nproc', '1', '--images', 'copy']) == 1
    with open(osp.join(out2, 'convert_164k_summary.json')) as f:
        summary4 = json.load(f)
    assert summary4['splits']['val2017']['images'] == {'done': 1,
                                                       'missing': 1}
    assert len(summary4['failures']) == 1
    assert 'image missing' in summary4['failures'][0]
    assert summary4['splits']['val2017']['converted'] == 2


def test_killed_conversion_leaves_only_complete_files(conv, tmp_path):
    """SIGKILL in the middle of writing the 3rd PNG, then resume."""
    rng = np.random.default_rng(1)
    ann, img, expected = _make_164k(str(tmp_path), rng, n_train=5, n_val=0)
    out = str(tmp_path / 'out')
    argv = ['--source', '164k', ann, '-o', out, '--splits', 'train2017',
            '--images', 'none', '--nproc', '1']
    driver = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {TOOLS!r})
        import convert_coco_stuff as c
        orig = c.write_bytes_atomic
        calls = []
        def dying_write(path, data):
            calls.append(path)
            if len(calls) == 3:  # killed half-way through the 3rd file
                with open(c.tmp_path_for(path), 'wb') as f:
                    f.write(data[:len(data) // 2])
                    f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            orig(path, data)
        c.write_bytes_atomic = dying_write
        sys.exit(c.main({argv!r}))
    """)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', driver], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    folder = osp.join(out, 'annotations', 'train2017')
    finals = sorted(f for f in os.listdir(folder) if not f.startswith('.'))
    temps = [f for f in os.listdir(folder) if f.startswith('.')]
    assert len(finals) == 2 and len(temps) == 1
    for f in finals:  # every file under a final name is complete and right
        name = f[:-len('_labelTrainIds.png')]
        np.testing.assert_array_equal(_read(osp.join(folder, f)),
                                      expected[('train2017', name)])
    assert conv.main(argv) == 0
    assert not [f for f in os.listdir(folder) if f.startswith('.')]
    with open(osp.join(out, 'convert_164k_summary.json')) as f:
        s = json.load(f)['splits']['train2017']
    assert (s['skipped'], s['converted']) == (2, 3)
    for (split, name), exp in expected.items():
        np.testing.assert_array_equal(
            _read(osp.join(folder, name + '_labelTrainIds.png')), exp)


# ------------------------------------------------------------------- 10k


def test_convert_10k_mat(conv, tmp_path):
    from scipy.io import savemat
    rng = np.random.default_rng(2)
    src = tmp_path / 'cocostuff-10k-v1.1'
    for sub in ('images', 'annotations', 'imageLists'):
        (src / sub).mkdir(parents=True)
    lists = {'train': ['COCO_train2014_000000000077',
                       'COCO_train2014_000000000078'],
             'test': ['COCO_train2014_000000000099']}
    expected = {}
    for lst, names in lists.items():
        (src / 'imageLists' / f'{lst}.txt').write_text('\n'.join(names) +
                                                       '\n')
        for k, name in enumerate(names):
            h, w = 13 + k, 19
            s = rng.integers(0, 183, (h, w)).astype(np.uint16)  # 0 unlabeled
            savemat(str(src / 'annotations' / f'{name}.mat'),
                    {'S': s, 'names': np.array(['x'], dtype=object)})
            _jpg(str(src / 'images' / f'{name}.jpg'), h, w, k)
            expected[(lst, name)] = _expected_from_coco_ids(s)
    out = str(tmp_path / 'out')
    assert conv.main(['--source', '10k', str(src), '-o', out, '--images',
                      'copy', '--nproc', '1']) == 0
    for (lst, name), exp in expected.items():
        split = {'train': 'train2014', 'test': 'test2014'}[lst]
        np.testing.assert_array_equal(
            _read(osp.join(out, 'annotations', split,
                           name + '_labelTrainIds.png')), exp)
        dst = osp.join(out, 'images', split, name + '.jpg')
        assert osp.isfile(dst) and not osp.islink(dst)
    assert exp[exp != 255].max() <= 170 and (exp == 255).any()


# ------------------------------------------------------------------ JSON


def _rle(mask):
    from pycocotools import mask as mask_utils
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': r['size'], 'counts': r['counts'].decode('ascii')}


def _make_json(root, rng):
    """stuff_<split>.json (stuff + 'other' 183) and instances_<split>.json."""
    h, w = 20, 30
    images = [{'id': 7, 'file_name': '000000000007.jpg', 'height': h,
               'width': w},
              {'id': 9, 'file_name': '000000000009.jpg', 'height': h,
               'width': w}]
    stuff_anns, inst_anns, truth = [], [], {}
    aid = 1
    for im in images:
        ids = np.zeros((h, w), np.int64)  # 0 = unlabeled
        ids[:8] = 157                     # sky-other
        ids[8:15, :18] = 124              # grass
        ids[8:, 18:] = 183                # other: thing pixels
        ids[15:, :5] = 92                 # banner
        # 15:, 5:18 stays unlabeled
        for cid in np.unique(ids):
            if cid == 0:
                continue
            stuff_anns.append({'id': aid, 'image_id': im['id'],
                               'category_id': int(cid), 'iscrowd': 0,
                               'segmentation': _rle(ids == cid)})
            aid += 1
        # things inside 'other': a person polygon, a crowd car (RLE), and
        # a small bicycle inside the person (must stay on top)
        person = np.zeros((h, w), bool)
        poly = [[18.0, 8.0, 30.0, 8.0, 30.0, 20.0, 18.0, 20.0]]
        car = np.zeros((h, w), bool)
        car[16:, 18:22] = True
        bike = np.zeros((h, w), bool)
        bike[10:12, 25:27] = True
        inst_anns += [
            {'id': aid, 'image_id': im['id'], 'category_id': 1, 'iscrowd': 0,
             'segmentation': poly, 'area': 144.0},
            {'id': aid + 1, 'image_id': im['id'], 'category_id': 3,
             'iscrowd': 1, 'segmentation': _rle(car), 'area': 16.0},
            {'id': aid + 2, 'image_id': im['id'], 'category_id': 2,
             'iscrowd': 0, 'segmentation': _rle(bike), 'area': 4.0}]
        aid += 3
        truth[im['file_name'][:-4]] = (ids, poly, car, bike)
        _jpg(osp.join(root, 'coco', 'val2017', im['file_name']), h, w, 1)
    cats = [{'id': i, 'name': str(i), 'supercategory': 's'}
            for i in range(92, 184)]
    os.makedirs(osp.join(root, 'stuff'))
    os.makedirs(osp.join(root, 'inst'))
    with open(osp.join(root, 'stuff', 'stuff_val2017.json'), 'w') as f:
        json.dump({'images': images, 'annotations': stuff_anns,
                   'categories': cats}, f)
    with open(osp.join(root, 'inst', 'instances_val2017.json'), 'w') as f:
        json.dump({'images': images, 'annotations': inst_anns,
                   'categories': [{'id': i, 'name': str(i)}
                                  for i in (1, 2, 3)]}, f)
    return truth


def test_convert_json_stuff_only_and_full(conv, tmp_path):
    from pycocotools import mask as mask_utils
    root = str(tmp_path)
    truth = _make_json(root, np.random.default_rng(3))
    out = str(tmp_path / 'stuffonly')
    assert conv.main(['--source', 'json', osp.join(root, 'stuff'),
                      '--img-dir', osp.join(root, 'coco'), '--splits',
                      'val2017', '-o', out, '--nproc', '1']) == 0
    out_full = str(tmp_path / 'full')
    assert conv.main(['--source', 'json', osp.join(root, 'stuff'),
                      '--things-dir', osp.join(root, 'inst'), '--splits',
                      'val2017', '-o', out_full, '--images', 'none',
                      '--nproc', '2']) == 0
    for name, (ids, poly, car, bike) in truth.items():
        # stuff-only: 0 = other, stuff id - 91, unlabeled 255
        exp = np.full(ids.shape, 255, np.uint8)
        stuff = (ids >= 92) & (ids <= 182)
        exp[stuff] = ids[stuff] - 91
        exp[ids == 183] = 0
        got = _read(osp.join(out, 'annotations', 'val2017',
                             name + '_labelTrainIds.png'))
        np.testing.assert_array_equal(got, exp)
        assert osp.islink(osp.join(out, 'images', 'val2017', name + '.jpg'))
        # full: stuff, then things (largest first); bare 'other' -> 255
        full_ids = np.where(ids == 183, 0, ids)
        h, w = ids.shape
        person = mask_utils.decode(mask_utils.merge(
            mask_utils.frPyObjects(poly, h, w))).astype(bool)
        full_ids[person] = 1
        full_ids[car] = 3
        full_ids[bike] = 2
        got = _read(osp.join(out_full, 'annotations', 'val2017',
                             name + '_labelTrainIds.png'))
        np.testing.assert_array_equal(got, _expected_from_coco_ids(full_ids))
        # train ids: person 0, bicycle 1 (on top of the person), car 2
        assert (got == 0).any() and (got == 1).sum() == 4
        assert (got == 2).sum() == 16
    with open(osp.join(out, 'convert_json_summary.json')) as f:
        s = json.load(f)
    assert s['num_classes'] == 92 and s['classes'][0]['name'] == 'other'


def test_help_explains_sources(conv, capsys):
    with pytest.raises(SystemExit) as e:
        conv.parse_args(['--help'])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ('stuffthingmaps', '.mat', 'stuff_{train,val}2017.json',
                 '--nproc', 're-run', '--things-dir'):
        assert word.lower() in text.lower(), word
