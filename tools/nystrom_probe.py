#!/usr/bin/env python
"""How much a trained NystromHead uses its global-context branch.

For each checkpoint of a NystromHead model, on the validation images of its
config (whole images, as ``tools/test.py`` sees them), it measures:

* ``gamma``: the learned gate;
* ``share``: ``||gamma * context|| / ||y||``, the branch's size against the
  features it is added to (``y + gamma * attention(norm(y))``), over all
  images;
* ``share_varying``: the same for the branch minus its mean over the
  image's positions: the part that differs from one pixel to another (the
  rest is one vector per image, as an image-pooling branch gives);
* ``mIoU`` and ``aAcc`` as trained and with the branch knocked out
  (``gamma = 0`` at test time): what the trained model loses without it;
* ``mIoU_exact_attention``: the same model with exact softmax attention
  in place of the Nystrom approximation (landmarks = tokens): what the
  approximation costs;
* ``rf_cover``: the share of the input pixels that reach the centre token of
  ``y`` (the gradient of its features with respect to the image is above
  1e-3 of its largest value), averaged over a few images. Near 1 means the
  convolutions already see the whole image, so global attention has no
  new pixels to bring.

Example::

    R=work_dirs/regularizer_experiment/collage/nystrom
    python tools/nystrom_probe.py $R/seed*/iter_*.pth \
        --out work_dirs/nystrom_probe.json

The config is the ``*.py`` file next to each checkpoint (the one
``tools/train.py`` saves in its work dir) unless ``--config`` is given.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import Dict, List

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoints', nargs='+', help='.pth files of models '
                   'with a NystromHead decode head')
    p.add_argument('--config', help='config of every checkpoint (default: '
                   'the one .py file in its folder)')
    p.add_argument('--max-images', type=int, default=None,
                   help='first N validation images only')
    p.add_argument('--rf-images', type=int, default=4,
                   help='images for the receptive-field cover')
    p.add_argument('--out', help='JSON file for the results')
    return p.parse_args(argv)


def config_of(ckpt: str, given: str = None) -> str:
    if given:
        return given
    found = sorted(glob.glob(osp.join(osp.dirname(ckpt), '*.py')))
    if len(found) != 1:
        raise SystemExit(f'{ckpt}: expected one config .py beside it, found '
                         f'{len(found)}; pass --config')
    return found[0]


def load(cfg_path: str, ckpt: str):
    from mmseg.apis import init_model

    import segreg  # noqa: F401
    model = init_model(cfg_path, ckpt, device='cpu')
    head = model.decode_head
    if not hasattr(head, 'context') or not hasattr(head, 'gamma'):
        raise SystemExit(f'{ckpt}: the decode head is '
                         f'{type(head).__name__}, not a NystromHead')
    return model.eval()


def val_samples(model, max_images: int = None) -> List[dict]:
    """The validation split through the config's test pipeline."""
    from mmseg.registry import DATASETS

    cfg = model.cfg.test_dataloader.dataset.copy()
    dataset = DATASETS.build(cfg)
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    return [dataset[i] for i in range(n)]


def preprocess(model, sample: dict) -> dict:
    """One dataset sample through the model's data preprocessor."""
    return model.data_preprocessor(
        dict(inputs=[sample['inputs']],
             data_samples=[sample['data_samples']]), False)


def evaluate(model, samples, knock_out: bool = False,
             exact: bool = False) -> Dict[str, float]:
    """mIoU / aAcc (segreg's convention) and the branch's share, as
    trained, with the branch knocked out, or with exact attention."""
    from segreg.evaluation.functional import (confusion_matrix,
                                              metrics_from_confusion)
    head = model.decode_head
    num_classes = head.num_classes
    gamma = head.gamma.detach().clone()
    norms = dict(y=0.0, ctx=0.0, varying=0.0)
    context = head.context

    def probe(y):
        out = context(y)
        norms['y'] += float(y.pow(2).sum())
        branch = out - y
        norms['ctx'] += float(branch.pow(2).sum())
        varying = branch - branch.mean(dim=(2, 3), keepdim=True)
        norms['varying'] += float(varying.pow(2).sum())
        return out

    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    landmarks = head.attn.num_landmarks
    if exact:  # m >= n: the op returns exact softmax attention
        head.attn.num_landmarks = 1 << 30
    head.context = probe
    try:
        with torch.no_grad():
            if knock_out:
                head.gamma.zero_()
            for s in samples:
                data = preprocess(model, s)
                pred = model.predict(data['inputs'], data['data_samples'])[0]
                p = pred.pred_sem_seg.data[0].numpy()
                g = pred.gt_sem_seg.data[0].numpy()
                conf += confusion_matrix(p, g, num_classes)
    finally:
        del head.context
        head.attn.num_landmarks = landmarks
        with torch.no_grad():
            head.gamma.copy_(gamma)
    m = metrics_from_confusion(conf)
    return dict(mIoU=100 * float(m['mIoU']), aAcc=100 * float(m['aAcc']),
                share=(norms['ctx'] / max(norms['y'], 1e-30)) ** 0.5,
                share_varying=(norms['varying'] / max(norms['y'], 1e-30))**0.5)


def rf_cover(model, samples, n: int) -> float:
    """Share of input pixels with a gradient above 1e-3 of the largest at
    the centre token of the context block's input ``y``."""
    head = model.decode_head
    covers = []
    for s in samples[:n]:
        data = preprocess(model, s)
        img = data['inputs'].clone().requires_grad_(True)
        feats = model.extract_feat(img)
        y = head.convs[0](head._transform_inputs(feats))
        h, w = y.shape[2:]
        y[0, :, h // 2, w // 2].pow(2).sum().backward()
        g = img.grad[0].abs().sum(0)
        covers.append(float((g > 1e-3 * g.max()).float().mean()))
    return float(np.mean(covers))


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    rows = []
    samples_of: Dict[str, list] = {}
    for ckpt in args.checkpoints:
        cfg = config_of(ckpt, args.config)
        model = load(cfg, ckpt)
        if cfg not in samples_of:
            samples_of[cfg] = val_samples(model, args.max_images)
        samples = samples_of[cfg]
        on = evaluate(model, samples)
        off = evaluate(model, samples, knock_out=True)
        exact = evaluate(model, samples, exact=True)
        row = dict(checkpoint=ckpt, gamma=model.decode_head.gamma.item(),
                   share=on['share'], share_varying=on['share_varying'], mIoU=on['mIoU'], aAcc=on['aAcc'],
                   mIoU_knocked_out=off['mIoU'], aAcc_knocked_out=off['aAcc'],
                   mIoU_exact_attention=exact['mIoU'],
                   rf_cover=rf_cover(model, samples, args.rf_images),
                   images=len(samples))
        rows.append(row)
        print(f"{ckpt}: gamma {row['gamma']:+.4f}  share "
              f"{100 * row['share']:.1f}% (varying "
              f"{100 * row['share_varying']:.1f}%)  mIoU {row['mIoU']:.2f} -> "
              f"{row['mIoU_knocked_out']:.2f} without the branch, "
              f"{row['mIoU_exact_attention']:.2f} with exact attention  aAcc "
              f"{row['aAcc']:.2f} -> {row['aAcc_knocked_out']:.2f}  "
              f"receptive field covers {100 * row['rf_cover']:.0f}% of the "
              'image', flush=True)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
