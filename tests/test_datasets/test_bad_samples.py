"""Bad images and labels are named in one line, in tools/train.py and
tools/test.py, and can be skipped and counted with skip_bad_samples=True."""
from __future__ import annotations

import glob
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from conftest import DEMO_CONFIG

SPLITS = dict(train='train2017', val='val2017')


def _shrink(root, keep):
    """Keep the first ``keep`` images (and labels) of each split."""
    for split in SPLITS.values():
        imgs = sorted(glob.glob(osp.join(root, 'images', split, '*.jpg')))
        for img in imgs[keep:]:
            name = osp.splitext(osp.basename(img))[0]
            os.remove(img)
            os.remove(osp.join(root, 'annotations', split,
                               f'{name}_labelTrainIds.png'))


def _pair(root, split):
    img = sorted(glob.glob(osp.join(root, 'images', SPLITS[split],
                                    '*.jpg')))[0]
    name = osp.splitext(osp.basename(img))[0]
    return img, osp.join(root, 'annotations', SPLITS[split],
                         f'{name}_labelTrainIds.png')


def _truncate(path, keep=0.5):
    with open(path, 'rb+') as f:
        f.truncate(int(osp.getsize(path) * keep))


def plant(root, split, defect):
    """Damage the first pair of ``split``; returns (file named, words)."""
    img, seg = _pair(root, split)
    if defect == 'corrupt_image':
        with open(img, 'wb') as f:
            f.write(b'this is not a jpeg' * 20)
        return img, 'unreadable'
    if defect == 'truncated_image':
        _truncate(img)
        return img, 'truncated'
    if defect == 'truncated_label':
        _truncate(seg)
        return seg, 'unreadable'
    if defect == 'label_out_of_range':
        lab = cv2.imread(seg, cv2.IMREAD_UNCHANGED)
        lab[:4, :4] = 200  # the demo's 12 classes are raw COCO ids, 200 none
        cv2.imwrite(seg, lab)
        return seg, '200'
    if defect == 'size_mismatch':
        lab = cv2.imread(seg, cv2.IMREAD_UNCHANGED)
        cv2.imwrite(seg, lab[:-8])
        return seg, 'but its image'
    if defect == 'missing_label':
        os.remove(seg)
        return seg, 'does not exist'
    raise ValueError(defect)


DEFECTS = ['corrupt_image', 'truncated_image', 'truncated_label',
           'label_out_of_range', 'size_mismatch', 'missing_label']


@pytest.fixture
def small_root(demo_data_root, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(demo_data_root, root)
    _shrink(root, keep=2)
    return root


def _options(root, *extra):
    return [f'{k}_dataloader.dataset.data_root={root}'
            for k in ('train', 'val', 'test')] + [
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=2', *extra]


def _assert_one_line(err, path, words):
    lines = [ln for ln in err.strip().splitlines() if ln.startswith('error:')]
    assert len(lines) == 1, err[-2000:]
    line = lines[0]
    assert path in line and words in line, line
    assert 'tools/check_dataset.py' in line and DEMO_CONFIG in line, line
    assert 'Traceback' not in err, err[-2000:]


@pytest.mark.parametrize('defect', DEFECTS)
def test_train_names_the_bad_file(defect, small_root, tmp_path,
                                  tools_on_path, capsys):
    import train
    path, words = plant(small_root, 'train', defect)
    capsys.readouterr()
    rc = train.main([DEMO_CONFIG, '--work-dir', str(tmp_path / 'w'),
                     '--cfg-options', *_options(small_root)])
    assert rc == 2
    _assert_one_line(capsys.readouterr().err, path, words)


@pytest.fixture(scope='module')
def demo_checkpoint(demo_data_root, tmp_path_factory, tools_on_path):
    import train
    work = str(tmp_path_factory.mktemp('ckpt'))
    assert train.main([DEMO_CONFIG, '--work-dir', work, '--cfg-options',
                       *_options(demo_data_root,
                                 'train_cfg.val_interval=5')]) == 0
    return osp.join(work, 'iter_1.pth')


@pytest.mark.parametrize('defect', DEFECTS)
def test_test_tool_names_the_bad_file(defect, small_root, tmp_path,
                                      demo_checkpoint, tools_on_path,
                                      capsys):
    import test as test_tool
    path, words = plant(small_root, 'val', defect)
    capsys.readouterr()
    rc = test_tool.main([DEMO_CONFIG, demo_checkpoint, '--out',
                         str(tmp_path / 'eval'), '--cfg-options',
                         *_options(small_root)[:3]])
    assert rc == 2
    _assert_one_line(capsys.readouterr().err, path, words)


def test_skip_bad_samples_trains_and_counts(small_root, tmp_path,
                                            tools_on_path):
    import train
    path, _ = plant(small_root, 'train', 'label_out_of_range')
    work = str(tmp_path / 'w')
    rc = train.main([DEMO_CONFIG, '--work-dir', work, '--cfg-options',
                     *_options(small_root, 'train_cfg.max_iters=2',
                               'train_cfg.val_interval=5',
                               'skip_bad_samples=True')])
    assert rc == 0
    (log, ) = glob.glob(osp.join(work, '*', '*.log'))
    with open(log) as f:
        text = f.read()
    # 2 iterations x 2 samples over 2 train images: the bad one twice
    assert 'skip_bad_samples: 2 bad sample(s) skipped in train (1 distinct)' \
        in text, text[-3000:]
    assert path in text


def test_bad_values_are_checked_after_the_label_map():
    """Unit check of the inserted step against numpy on a label map."""
    from segreg.datasets.sample_checks import (BadSampleError,
                                               LoadedSampleCheck,
                                               bad_label_values)
    seg = np.array([[0, 11, 255], [12, 200, 3]], np.uint8)
    assert bad_label_values(seg, 12, 255) == [12, 200]
    assert bad_label_values(seg.astype(np.int64), 12, 255) == [12, 200]
    check = LoadedSampleCheck(12, 255, hint='fix it')
    with pytest.raises(BadSampleError, match=r'\[12, 200\].*fix it'):
        check(dict(gt_seg_map=seg, ori_shape=(2, 3), seg_map_path='x.png'))
    ok = dict(gt_seg_map=np.minimum(seg, 11), ori_shape=(2, 3))
    assert check(ok) is ok
