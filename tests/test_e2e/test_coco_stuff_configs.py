"""The real COCO-Stuff configs through tools/train.py and tools/test.py.

Each test runs the tools as a user would (subprocesses, from the repository
root) on a data root that tools/convert_coco_stuff.py made from files in the
official formats (conftest.py). The configs keep their pipelines (RandomResize
of realistic-size images, RandomCrop with cat_max_ratio,
PhotoMetricDistortion, the test-time Resize before LoadAnnotations), their
models (SyncBN, reverted to BN on one process) and their losses and hooks;
``--cfg-options`` shrinks only what CPU time demands: the crop (and the data
preprocessor's padding size, which equals it), the test-time resize, the
batch, the iterations, the checkpoint / validation intervals, the workers,
and the data roots; ``model.pretrained=None`` avoids the ImageNet download.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List, Sequence

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from segreg.datasets.coco_stuff import COCO_STUFF_CLASSES, STUFF_ONLY_CLASSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

pytestmark = pytest.mark.slow

CFG_164K = {
    'deeplabv3': 'configs/deeplabv3/'
    'deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py',
    'dualreg-iou': 'configs/dualreg/'
    'dualreg-iou_deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py',
    'nystrom': 'configs/nystrom/'
    'nystrom_r50-d8_4xb4-80k_coco-stuff164k-512x512.py',
}
CFG_10K = ('configs/deeplabv3plus/'
           'deeplabv3plus_r50-d8_4xb4-20k_coco-stuff10k-512x512.py')
#: Training crop (side). The Nystrom head has 256 landmarks: a 136x136 crop
#: gives 17x17 = 289 > 256 tokens at output stride 8, so training goes
#: through the approximation (smaller maps get exact attention).
CROP = {'nystrom': 136}
DEFAULT_CROP = 64
#: Test-time Resize scale (validation and test): short side 128 instead of
#: 512 (the 4:3 val images become 171x128, 22x16 = 352 tokens for the
#: Nystrom head). Training validates once, at its last iteration.
TEST_SCALE = '(2048,128)'
BATCH = 2
ITERS = 2  # first run; the resumed run goes on to 2 * ITERS


def _index_of(pipeline: Sequence[dict], type_: str) -> int:
    types = [step['type'] for step in pipeline]
    assert types.count(type_) == 1, types
    return types.index(type_)


def _common(data_root: str, cfg: Config) -> List[str]:
    opts = ['model.pretrained=None']
    for loader in ('val_dataloader', 'test_dataloader'):
        resize = _index_of(cfg[loader].dataset.pipeline, 'Resize')
        opts.append(f'{loader}.dataset.pipeline.{resize}.scale={TEST_SCALE}')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}',
                 f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    return opts


def train_options(cfg_path: str, data_root: str, crop: int,
                  max_iters: int) -> List[str]:
    cfg = Config.fromfile(osp.join(REPO, cfg_path))
    crop_at = _index_of(cfg.train_dataloader.dataset.pipeline, 'RandomCrop')
    return _common(data_root, cfg) + [
        f'model.data_preprocessor.size=({crop},{crop})',
        f'train_dataloader.dataset.pipeline.{crop_at}.crop_size='
        f'({crop},{crop})',
        f'train_dataloader.batch_size={BATCH}',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        f'default_hooks.checkpoint.interval={ITERS}',
        'default_hooks.logger.interval=1',
    ]


def eval_options(cfg_path: str, data_root: str) -> List[str]:
    return _common(data_root, Config.fromfile(osp.join(REPO, cfg_path)))


def run_tool(tool: str, args: List[str]) -> str:
    """``python tools/<tool> ARGS`` from the repository root; its output."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, osp.join('tools', tool), *args],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{tool} exited {proc.returncode}:\n' + \
        out[-4000:]
    return out


def train(cfg_path, work, options, resume=False) -> str:
    return run_tool('train.py', [cfg_path, '--work-dir', work,
                                 *(['--resume'] if resume else []),
                                 '--cfg-options', *options])


def evaluate(cfg_path, ckpt, out, options) -> dict:
    run_tool('test.py', [cfg_path, ckpt, '--out', out,
                         '--cfg-options', *options])
    with open(osp.join(out, 'metrics.json')) as f:
        return json.load(f)


def run_logs(work: str) -> List[str]:
    """The runs' log texts, oldest first (one timestamped folder each)."""
    logs = sorted(glob.glob(osp.join(work, '*', '*.log')))
    texts = []
    for path in logs:
        with open(path) as f:
            texts.append(f.read())
    return texts


def train_scalars(work: str) -> List[List[dict]]:
    """Per run, oldest first: the logged training rows (one an iteration)."""
    runs = []
    for path in sorted(glob.glob(osp.join(work, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        runs.append([r for r in rows if 'loss' in r])
    return runs


def poly_lr(step: int, base=0.01, eta_min=1e-4, power=0.9, end=80000):
    """schedule_80k's PolyLR after ``step`` updates (as a fresh run has it)."""
    return eta_min + (base - eta_min) * (1 - step / end)**power


def ckpt_iter(path: str) -> int:
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    return ckpt['meta']['iter']


def gt_pixels(data_root: str, split: str, num_classes: int):
    """(images, per-class pixel counts) of ``annotations/<split>``."""
    folder = osp.join(data_root, 'annotations', split)
    files = sorted(os.listdir(folder))
    hist = np.zeros(256, np.int64)
    for f in files:
        hist += np.bincount(
            np.asarray(Image.open(osp.join(folder, f))).ravel(),
            minlength=256)
    assert not hist[num_classes:255].any(), 'train ids out of range'
    return len(files), hist[:num_classes]


def check_metrics(m: dict, classes: Sequence[str], data_root: str,
                  split: str, ckpt: str) -> None:
    """metrics.json names every class and scores the original-size labels."""
    assert m['num_classes'] == len(classes) == len(m['classes'])
    assert m['classes'] == list(classes)
    assert set(m['per_class']) == set(classes)
    n_images, hist = gt_pixels(data_root, split, len(classes))
    assert m['num_images'] == n_images
    # the labels are scored at their original size (LoadAnnotations after
    # the test-time Resize): every labelled pixel of the val PNGs, no more
    assert m['gt_pixels'] == hist.tolist()
    assert sum(m['pred_pixels']) == hist.sum()
    for key in ('aAcc', 'mIoU', 'mAcc', 'mFscore'):
        assert m[key] is not None and 0 <= m[key] <= 100, key
    present = [c for c, n in zip(classes, hist) if n]
    assert len(present) >= 5  # stuff bands + objects of the fixture scenes
    for name in present:
        assert m['per_class'][name]['IoU'] is not None, name
    assert osp.samefile(m['checkpoint'], ckpt)


def check_171_names(m: dict) -> None:
    """The COCO-Stuff names, written out (not taken from segreg's table)."""
    names = m['classes']
    assert len(names) == 171
    assert names[:3] == ['person', 'bicycle', 'car']
    assert names[79:82] == ['toothbrush', 'banner', 'blanket']
    assert names[-1] == 'wood' and 'sky-other' in names
    assert 'street sign' not in names  # no masks: not a class


@pytest.fixture
def work(tmp_path):
    """A work dir whose checkpoints (~0.5 GB each) are removed afterwards."""
    yield str(tmp_path / 'work')
    for path in glob.glob(str(tmp_path / '**' / '*.pth'), recursive=True):
        os.remove(path)


@pytest.mark.parametrize('name', sorted(CFG_164K))
def test_164k_train_resume_evaluate(name, coco164k_root, work, tmp_path):
    cfg = CFG_164K[name]
    crop = CROP.get(name, DEFAULT_CROP)
    log = train(cfg, work, train_options(cfg, coco164k_root, crop, ITERS))
    assert 'SyncBatchNorm (SyncBN) layers in the model will be ' \
        'automatically reverted' in log
    assert ckpt_iter(osp.join(work, f'iter_{ITERS}.pth')) == ITERS

    train(cfg, work, train_options(cfg, coco164k_root, crop, 2 * ITERS),
          resume=True)
    first, resumed = run_logs(work)
    assert 'resumed' not in first
    assert f'resumed epoch: 0, iter: {ITERS}' in resumed
    runs = train_scalars(work)
    assert [[r['iter'] for r in rows] for rows in runs] == [
        list(range(1, ITERS + 1)), list(range(ITERS + 1, 2 * ITERS + 1))]
    for row in runs[0] + runs[1]:
        assert np.isfinite(row['loss']), row
        # the schedule continues where it stopped (lr logged before the step)
        assert row['lr'] == pytest.approx(poly_lr(row['iter'] - 1),
                                          rel=1e-9), row
        if name == 'dualreg-iou':
            assert np.isfinite(row['decode.loss_dual_iou']), row
    last = osp.join(work, f'iter_{2 * ITERS}.pth')
    assert ckpt_iter(last) == 2 * ITERS

    m = evaluate(cfg, last, str(tmp_path / 'eval'),
                 eval_options(cfg, coco164k_root))
    check_metrics(m, COCO_STUFF_CLASSES, coco164k_root, 'val2017', last)
    check_171_names(m)


def test_10k_train_evaluate(coco10k_root, work, tmp_path):
    train(CFG_10K, work,
          train_options(CFG_10K, coco10k_root, DEFAULT_CROP, ITERS))
    ckpt = osp.join(work, f'iter_{ITERS}.pth')
    m = evaluate(CFG_10K, ckpt, str(tmp_path / 'eval'),
                 eval_options(CFG_10K, coco10k_root))
    check_metrics(m, COCO_STUFF_CLASSES, coco10k_root, 'test2014', ckpt)
    check_171_names(m)


STUFFONLY_CFG = """\
# DeepLabV3 R50-D8 on the 92-class stuff-only COCO-Stuff (no such config
# ships in configs/: this is what a user writes from the _base_ fragments)
_base_ = [
    '{repo}/configs/_base_/models/deeplabv3_r50-d8.py',
    '{repo}/configs/_base_/datasets/coco-stuff-stuffonly.py',
    '{repo}/configs/_base_/default_runtime.py',
    '{repo}/configs/_base_/schedules/schedule_80k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=92),
    auxiliary_head=dict(num_classes=92))
"""


def test_stuffonly_train_evaluate(stuffonly_root, work, tmp_path):
    cfg = str(tmp_path / 'deeplabv3_r50-d8_1xb2_coco-stuff-stuffonly.py')
    with open(cfg, 'w') as f:
        f.write(STUFFONLY_CFG.format(repo=REPO))
    train(cfg, work, train_options(cfg, stuffonly_root, DEFAULT_CROP, ITERS))
    ckpt = osp.join(work, f'iter_{ITERS}.pth')
    m = evaluate(cfg, ckpt, str(tmp_path / 'eval'),
                 eval_options(cfg, stuffonly_root))
    check_metrics(m, STUFF_ONLY_CLASSES, stuffonly_root, 'val2017', ckpt)
    assert m['classes'][0] == 'other' and m['classes'][1] == 'banner'
    assert m['classes'][-1] == 'wood'
    assert m['gt_pixels'][0] > 0  # thing pixels are "other", class 0
