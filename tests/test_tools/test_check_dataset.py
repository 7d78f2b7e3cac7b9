"""tools/check_dataset.py: passes a clean set, finds each planted defect."""
from __future__ import annotations

import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
BASE_164K = osp.join(REPO, 'configs', '_base_', 'datasets',
                     'coco-stuff164k.py')
BASE_STUFFONLY = osp.join(REPO, 'configs', '_base_', 'datasets',
                          'coco-stuff-stuffonly.py')
DEMO = osp.join(REPO, 'configs', '_base_', 'datasets', 'demo.py')


@pytest.fixture(scope='module')
def chk():
    if TOOLS not in sys.path:
        sys.path.insert(0, TOOLS)
    import check_dataset
    return check_dataset


def _write_pair(root, split, name, seg, img_hw=None, seed=0):
    img_hw = img_hw or seg.shape
    rng = np.random.default_rng(seed)
    for sub in ('images', 'annotations'):
        os.makedirs(osp.join(root, sub, split), exist_ok=True)
    cv2.imwrite(osp.join(root, 'images', split, name + '.jpg'),
                rng.integers(0, 255, (*img_hw, 3), np.uint8))
    cv2.imwrite(osp.join(root, 'annotations', split,
                         name + '_labelTrainIds.png'), seg)


def _clean_set(root, split='train2017', n=6, values=(0, 5, 170, 255)):
    rng = np.random.default_rng(1)
    segs = {}
    for k in range(n):
        seg = rng.choice(values, size=(12, 16)).astype(np.uint8)
        _write_pair(root, split, f'{k:06d}', seg, seed=k)
        segs[f'{k:06d}'] = seg
    return segs


def _run(chk, tmp_path, argv):
    out = str(tmp_path / f'report{len(os.listdir(tmp_path))}.json')
    rc = chk.main(argv + ['--json', out])
    with open(out) as f:
        return rc, json.load(f)['reports']


def test_clean_set_passes_with_correct_frequencies(chk, tmp_path, capsys):
    root = str(tmp_path / 'data')
    segs = _clean_set(root)
    rc, reports = _run(chk, tmp_path, [BASE_164K, '--data-root', root,
                                       '--nproc', '2'])
    assert rc == 0
    (rep, ) = reports
    assert rep['errors'] == [] and rep['num_pairs'] == 6
    hist = np.bincount(np.concatenate([s.ravel() for s in segs.values()]),
                       minlength=256)
    pixels = [c['pixels'] for c in rep['classes']]
    assert len(pixels) == 171 and pixels == hist[:171].tolist()
    assert rep['ignored_pixels'] == hist[255]
    assert rep['classes'][5]['images'] == 6
    never = {w[1] for w in rep['warnings'] if w[0] == 'class_never_seen'}
    assert 'person' not in never and 'bicycle' in never
    text = capsys.readouterr().out
    assert 'RESULT: OK' in text and 'wood' in text


def test_planted_defects_are_each_found(chk, tmp_path, capsys):
    root = str(tmp_path / 'data')
    split = 'train2017'
    _clean_set(root, split, n=4)
    img_dir = osp.join(root, 'images', split)
    ann_dir = osp.join(root, 'annotations', split)
    ok = np.zeros((12, 16), np.uint8)
    # 1. image without label
    _write_pair(root, split, 'nolabel', ok)
    os.remove(osp.join(ann_dir, 'nolabel_labelTrainIds.png'))
    # 2. label without image
    _write_pair(root, split, 'orphan', ok)
    os.remove(osp.join(img_dir, 'orphan.jpg'))
    # 3. truncated JPEG
    _write_pair(root, split, 'truncjpg', ok)
    p = osp.join(img_dir, 'truncjpg.jpg')
    data = open(p, 'rb').read()
    open(p, 'wb').write(data[:len(data) // 2])
    # 4. not an image at all
    _write_pair(root, split, 'garbage', ok)
    open(osp.join(img_dir, 'garbage.jpg'), 'wb').write(b'not a jpeg' * 20)
    # 5. truncated PNG label
    _write_pair(root, split, 'truncpng', ok)
    p = osp.join(ann_dir, 'truncpng_labelTrainIds.png')
    data = open(p, 'rb').read()
    open(p, 'wb').write(data[:len(data) - 20])  # decodes, but no IEND
    _write_pair(root, split, 'truncpng2', ok)
    p = osp.join(ann_dir, 'truncpng2_labelTrainIds.png')
    data = open(p, 'rb').read()
    open(p, 'wb').write(data[:len(data) // 2])
    # 6. size mismatch
    _write_pair(root, split, 'badsize', ok, img_hw=(12, 18))
    # 7. values outside 0-170 (other than 255)
    bad = ok.copy()
    bad[0, :3] = (171, 200, 254)
    _write_pair(root, split, 'outofrange', bad)
    # 8. an RGB colour mask instead of ids
    _write_pair(root, split, 'rgblabel', ok)
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(
        osp.join(ann_dir, 'rgblabel_labelTrainIds.png'))
    # 9. EXIF-rotated image whose label has the stored (unrotated) size
    _write_pair(root, split, 'exif', ok)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(
        osp.join(img_dir, 'exif.jpg'), exif=exif)

    expected = {
        ('missing_label', 'nolabel'), ('missing_image', 'orphan'),
        ('unreadable_image', 'truncjpg'), ('unreadable_image', 'garbage'),
        ('unreadable_label', 'truncpng'), ('unreadable_label', 'truncpng2'),
        ('size_mismatch', 'badsize'),
        ('label_out_of_range', 'outofrange'),
        ('label_not_single_channel', 'rgblabel'), ('size_mismatch', 'exif')
    }
    for extra in ([], ['--fast']):
        rc, (rep, ) = _run(chk, tmp_path, [BASE_164K, '--data-root', root,
                                           '--nproc', '1'] + extra)
        assert rc == 1
        found = {(k, n) for k, n, _ in rep['errors']}
        assert found == expected, (extra, found ^ expected)
        msgs = {n: m for _, n, m in rep['errors']}
        assert '171' in msgs['outofrange'] and '200' in msgs['outofrange']
        assert '254' in msgs['outofrange']
        assert 'EXIF' in msgs['exif']
    text = capsys.readouterr().out
    assert 'RESULT: FAIL' in text and 'image without a label' in text


def test_restricted_classes_and_stuffonly(chk, tmp_path):
    # demo config: 12 classes picked from the 171 by name; other valid train
    # ids become ignore (not an error), 171+ is still an error
    root = str(tmp_path / 'demo')
    seg = np.full((12, 16), 145, np.uint8)  # sky-other
    seg[:2] = 0                              # person
    seg[2:4] = 50                            # broccoli: not a demo class
    _write_pair(root, 'val2017', 'a', seg)
    rc, (rep, ) = _run(chk, tmp_path, [DEMO, '--data-root', root,
                                       '--split', 'val'])
    assert rc == 0
    cls = {c['name']: c['pixels'] for c in rep['classes']}
    assert len(cls) == 12 and cls['sky-other'] == 128 and cls['person'] == 32
    assert rep['ignored_pixels'] == 32
    # stuff-only: 92 classes, so 92+ is out of range
    root = str(tmp_path / 'so')
    seg = np.zeros((12, 16), np.uint8)
    seg[0, 0] = 91
    _write_pair(root, 'val2017', 'ok', seg)
    seg2 = seg.copy()
    seg2[0, 1] = 92
    _write_pair(root, 'val2017', 'bad', seg2)
    rc, (rep, ) = _run(chk, tmp_path, [BASE_STUFFONLY, '--data-root', root,
                                       '--split', 'val'])
    assert rc == 1
    assert [(k, n) for k, n, _ in rep['errors']] == [('label_out_of_range',
                                                      'bad')]
    assert rep['classes'][0]['name'] == 'other'


def test_reduce_zero_label_value_table(chk):
    spec = dict(disk_classes=['a', 'b', 'c'], reduce_zero_label=True,
                ignore_index=255, label_map=None)
    t = chk.value_table(spec)
    assert t[0] == -1 and t[1:4].tolist() == [0, 1, 2] and t[4] == -2
    assert t[255] == -1
    spec.update(label_map={0: 255, 1: 0, 2: 1})
    t = chk.value_table(spec)
    assert t[1] == -1 and t[2] == 0 and t[3] == 1


def test_unusable_config_or_folder(chk, tmp_path, capsys):
    assert chk.main([str(tmp_path / 'nope.py')]) == 2
    missing = str(tmp_path / 'empty')
    capsys.readouterr()
    rc, (rep, ) = _run(chk, tmp_path, [BASE_164K, '--data-root', missing])
    # the documented status for data that cannot be checked at all
    assert rc == 2 and rep['errors'][0][0] == 'missing_folder'
    err = capsys.readouterr().err
    assert 'CANNOT CHECK' in err and missing in err and 'data/README.md' in err
