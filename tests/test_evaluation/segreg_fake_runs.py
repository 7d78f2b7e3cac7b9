"""Fake evaluated runs on disk, for report / compare / ablate tests.

``make_fake_run(folder, ...)`` writes what tools/train.py + tools/test.py
leave behind: a work dir with ``<timestamp>/vis_data/scalars.json``, a config
dump, ``last_checkpoint`` and ``eval/`` with metrics.json, confusion.npy and
per_image.npz computed by the real segreg code from random label maps; with
``preds=True`` also what ``tools/test.py --save-preds`` adds (preds/, gt/,
preds_index.json) and the input images they point to.
``make_study_root(parent, name, qualities)`` lays such runs out as a study
root of tools/ablate.py (``ROOT/ARM/seedS`` and the training pixel counts).
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np

from segreg.evaluation.functional import confusion_matrix
from segreg.evaluation.metrics_file import write_metrics_folder
from segreg.evaluation.per_image import PerImageStats
from segreg.evaluation.predictions import (GT_DIR, PREDS_DIR, save_label_png,
                                           write_index)

CLASSES = ('sky', 'grass', 'sea', 'person', 'car', 'bird', 'kite')
PALETTE = [(70, 130, 180), (0, 160, 0), (0, 0, 200), (220, 20, 60),
           (0, 0, 142), (250, 170, 30), (255, 0, 255)]


def fake_predictions(num_images: int, num_classes: int, quality: float,
                     seed: int, size: int = 16):
    """Ground truth (shared by every run) and predictions of given quality.

    The ground truth is the same for every call with the same image count
    (seed 1234); class frequencies are imbalanced and the last class never
    occurs, so it is excluded; predictions copy the ground truth with
    probability ``quality`` and are random otherwise (never the last class).
    """
    grng = np.random.default_rng(1234)
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04, 0.0])[:num_classes]
    if num_classes > len(probs):  # many classes: geometric, last one absent
        probs = 0.9 ** np.arange(num_classes)
        probs[-1] = 0.0
    probs = probs / probs.sum()
    gt = grng.choice(num_classes, size=(num_images, size, size), p=probs)
    gt[:, 0, :3] = 255  # a few ignored pixels
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, num_classes - 1, size=gt.shape)
    keep = rng.random(gt.shape) < quality
    pred = np.where(keep & (gt != 255), gt, noise)
    return gt, pred


def make_fake_run(folder: str, seed: int, quality: float,
                  classes: Sequence[str] = CLASSES, num_images: int = 12,
                  scalars: bool = True, dual: bool = False,
                  schema_version: Optional[int] = 1,
                  with_per_image: bool = True, record: bool = True,
                  preds: bool = False, edit=None) -> str:
    """Write a fake work dir at ``folder``; returns ``folder``.

    ``edit(gt, pred) -> pred`` changes the predictions before anything is
    counted (constructed cases); ``preds`` saves the label maps.
    """
    C = len(classes)
    gt, pred = fake_predictions(num_images, C, quality, seed)
    if edit is not None:
        pred = edit(gt, pred)
    names = [f'img_{i:03d}.jpg' for i in range(num_images)]
    cells, counts = [], []
    for g, p in zip(gt, pred):
        conf = confusion_matrix(p, g, C).reshape(-1)
        nz = np.nonzero(conf)[0]
        cells.append(nz.astype(np.int32))
        counts.append(conf[nz])
    per_image = PerImageStats.from_sparse_confusions(names, cells, counts, C)
    conf = confusion_matrix(pred, gt, C)
    os.makedirs(folder, exist_ok=True)
    ckpt = osp.join(folder, 'iter_8.pth')
    write_metrics_folder(
        osp.join(folder, 'eval'), conf, per_image if with_per_image else
        None, classes,
        meta=dict(config='configs/fake.py', checkpoint=osp.abspath(ckpt),
                  command=f'python tools/test.py configs/fake.py {ckpt}'))
    if preds:
        from PIL import Image
        img_dir = osp.join(osp.dirname(osp.abspath(folder)), 'images')
        os.makedirs(img_dir, exist_ok=True)
        pal = np.array(PALETTE * (C // len(PALETTE) + 1), np.uint8)[:C]
        paths = {}
        for name, g, p in zip(names, gt, pred):
            stem = osp.splitext(name)[0]
            save_label_png(p, osp.join(folder, 'eval', PREDS_DIR,
                                       stem + '.png'))
            save_label_png(g, osp.join(folder, 'eval', GT_DIR,
                                       stem + '.png'))
            paths[name] = osp.join(img_dir, stem + '.png')
            if not osp.isfile(paths[name]):
                img = pal[np.clip(g, 0, C - 1)] // 2 + 60
                Image.fromarray(img.astype(np.uint8)).save(paths[name])
        write_index(osp.join(folder, 'eval'), classes, pal, 255, paths)
    if not with_per_image:
        p = osp.join(folder, 'eval', 'per_image.npz')
        if osp.exists(p):
            os.remove(p)
    mpath = osp.join(folder, 'eval', 'metrics.json')
    if schema_version != 1:
        with open(mpath) as f:
            data = json.load(f)
        if schema_version is None:
            data.pop('schema_version')
        else:
            data['schema_version'] = schema_version
        with open(mpath, 'w') as f:
            json.dump(data, f)
    with open(osp.join(folder, 'last_checkpoint'), 'w') as f:
        f.write(ckpt)
    with open(osp.join(folder, 'fake.py'), 'w') as f:
        f.write(f"model = dict(type='EncoderDecoder')\n"
                f"randomness = dict(deterministic=False, seed={seed})\n")
    if record:
        with open(osp.join(folder, 'ablate_run.json'), 'w') as f:
            json.dump({'seed': seed, 'config': 'configs/fake.py',
                       'train_command': f'python tools/train.py '
                       f'configs/fake.py --seed {seed}',
                       'train_status': 'done'}, f)
    if scalars:
        vis = osp.join(folder, '20260101_000000', 'vis_data')
        os.makedirs(vis, exist_ok=True)
        rng = np.random.default_rng(seed)
        with open(osp.join(vis, 'scalars.json'), 'w') as f:
            for it in range(1, 9):
                rec = {'lr': 0.01, 'loss': 2.0 / it + rng.random() * 0.1,
                       'decode.loss_ce': 1.5 / it, 'decode.acc_seg': 10.0 *
                       it, 'time': 0.1, 'data_time': 0.01, 'iter': it,
                       'step': it}
                if dual:
                    rec['decode.loss_dual_iou'] = 0.5 / it
                    rec['dual/lambda_mean'] = 0.1 * it
                f.write(json.dumps(rec) + '\n')
                if it % 4 == 0:
                    f.write(json.dumps({'aAcc': 50.0 + it, 'mIoU': 20.0 + it,
                                        'step': it}) + '\n')
    return folder


def make_study_root(parent, name: str, qualities: dict) -> str:
    """A study root: ``{arm: [quality of seed 0, seed 1, ...]}`` as run
    folders, and training pixel counts in which the last classes are the
    rare ones (``train_class_pixels.json``)."""
    root = osp.join(str(parent), name)
    for arm, qs in qualities.items():
        for seed, q in enumerate(qs):
            make_fake_run(osp.join(root, arm, f'seed{seed}'), seed, q)
    pixels = {c: float(10**(len(CLASSES) - i)) for i, c in
              enumerate(CLASSES)}
    with open(osp.join(root, 'train_class_pixels.json'), 'w') as f:
        json.dump(pixels, f)
    return root
