#!/usr/bin/env python
"""Seeded arms x seeds experiment of the metric regularizers on the demo data.

Trains every (arm, seed) with ``tools/train.py`` at the same number of
iterations, evaluates the final checkpoint on the validation set with an
independent confusion-matrix evaluation (and keeps mmseg's own validation
mIoU beside it as a cross-check), then prints per arm the mIoU mean +- 95%
CI (Student t over seeds), the paired difference to the first arm (CE) with
its CI, and the IoU of the rare classes, and writes everything to JSON.

Convention (shared/docs/design.md): a class absent from both the ground truth
and the predictions of the whole validation set is left out of the mean
(NaN); a class predicted but absent from the ground truth scores 0.

Examples:
    # the issue-6 measurement: CE, CE+DualIoU, CE+Lovasz, 3 seeds, 1000 iters
    OMP_NUM_THREADS=1 python tools/run_regularizer_experiment.py

    # quicker, 2 runs in parallel, other arms
    python tools/run_regularizer_experiment.py --iters 300 \\
        --arms ce dual_iou dual_fbeta dice --jobs 2

    # re-print / re-summarise finished runs without training
    python tools/run_regularizer_experiment.py --summarize-only
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = 'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
#: arm name -> config (relative to the repository root)
ARMS: Dict[str, str] = {
    'ce': f'configs/demo/{DEMO}',
    'dual_iou': f'configs/demo/dualreg-iou_{DEMO}',
    'dual_fbeta': f'configs/demo/dualreg-fbeta_{DEMO}',
    'smeasure': f'configs/demo/dualreg-smeasure_{DEMO}',
    'lovasz': f'configs/demo/lovasz_{DEMO}',
    'dice': f'configs/demo/dice_{DEMO}',
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arms', nargs='+', default=['ce', 'dual_iou', 'lovasz'],
                   help=f'arms (first = reference); known: {sorted(ARMS)} '
                   'or NAME=CONFIG')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--iters', type=int, default=None,
                   help='training iterations of every run (default: the '
                   "config's max_iters); the poly schedule is shortened too")
    p.add_argument('--jobs', type=int, default=2,
                   help='runs in parallel (each with OMP_NUM_THREADS=1)')
    p.add_argument('--work-dir', default='work_dirs/regularizer_experiment')
    p.add_argument('--out', default=None,
                   help='JSON results (default: WORK_DIR/results.json)')
    p.add_argument('--data-root', default=None,
                   help='override the dataset root of every config')
    p.add_argument('--rare-fraction', type=float, default=0.01,
                   help='rare class: under this fraction of the labelled '
                   'validation pixels')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='extra --cfg-options for every run')
    p.add_argument('--summarize-only', action='store_true',
                   help='do not train; summarise the finished runs')
    p.add_argument('--force', action='store_true',
                   help='retrain runs that already have a final checkpoint')
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------
def _arm_config(arm: str) -> str:
    if '=' in arm:
        return arm.split('=', 1)[1]
    if arm not in ARMS:
        raise SystemExit(f'unknown arm {arm!r}; known: {sorted(ARMS)}')
    return ARMS[arm]


def _arm_name(arm: str) -> str:
    return arm.split('=', 1)[0]


def _max_iters(config: str) -> int:
    from mmengine.config import Config
    return int(Config.fromfile(osp.join(REPO, config)).train_cfg.max_iters)


def _final_ckpt(work_dir: str, iters: int) -> Optional[str]:
    path = osp.join(work_dir, f'iter_{iters}.pth')
    return path if osp.isfile(path) else None


def train_one(config: str, work_dir: str, seed: int, iters: int,
              args: argparse.Namespace) -> dict:
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            'default_hooks.logger.interval=50']
    if iters != _max_iters(config):
        opts.append(f'param_scheduler.1.end={iters}')
    if args.data_root:
        for loader in ('train', 'val', 'test'):
            opts.append(f'{loader}_dataloader.dataset.data_root='
                        f'{args.data_root}')
    opts += list(args.cfg_options)
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--seed', str(seed), '--cfg-options'
           ] + opts
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    os.makedirs(work_dir, exist_ok=True)
    t0 = time.time()
    with open(osp.join(work_dir, 'train_stdout.txt'), 'w') as log:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    return dict(returncode=rc, wall_s=time.time() - t0, cmd=cmd)


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def evaluate(config: str, ckpt: str, data_root: Optional[str]) -> dict:
    """Confusion matrix of the checkpoint on the config's validation set."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmseg.apis import init_model
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    import segreg  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, config))
    if data_root:
        cfg.val_dataloader.dataset.data_root = data_root
    ds_cfg = cfg.val_dataloader.dataset
    cwd = os.getcwd()
    os.chdir(REPO)  # configs name data roots relative to the repository
    try:
        model = init_model(cfg, ckpt, device='cpu')
        dataset = DATASETS.build(ds_cfg)
        classes = list(dataset.metainfo['classes'])
        C = len(classes)
        conf = np.zeros((C, C), dtype=np.int64)
        ignore = 255
        with torch.no_grad():
            for i in range(0, len(dataset), 8):
                batch = pseudo_collate(
                    [dataset[j] for j in range(i, min(i + 8, len(dataset)))])
                for out in model.test_step(batch):
                    pred = out.pred_sem_seg.data.reshape(-1).numpy()
                    gt = out.gt_sem_seg.data.reshape(-1).numpy()
                    keep = gt != ignore
                    conf += np.bincount(
                        gt[keep].astype(np.int64) * C + pred[keep],
                        minlength=C * C).reshape(C, C)
    finally:
        os.chdir(cwd)
    return dict(classes=classes, confusion=conf.tolist())


def metrics_from_confusion(conf: np.ndarray) -> dict:
    tp = np.diag(conf).astype(np.float64)
    gt = conf.sum(1).astype(np.float64)
    pred = conf.sum(0).astype(np.float64)
    union = gt + pred - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, tp / union, np.nan)
        f1 = np.where(gt + pred > 0, 2 * tp / (gt + pred), np.nan)
    return dict(mIoU=float(np.nanmean(iou) * 100),
                mFscore=float(np.nanmean(f1) * 100),
                aAcc=float(tp.sum() / max(1, conf.sum()) * 100),
                IoU=(iou * 100).tolist(), Fscore=(f1 * 100).tolist(),
                gt_pixels=gt.tolist())


def mmseg_val_miou(work_dir: str) -> Optional[float]:
    """The runner's own last validation mIoU (vis_data/scalars.json)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    value = None
    for path in files:
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'mIoU' in rec:
                    value = float(rec['mIoU'])
    return value


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def t_interval(values: List[float], level: float = 0.95) -> dict:
    """Mean and the Student-t confidence interval half-width."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)],
                   dtype=np.float64)
    n = len(x)
    if n == 0:
        return dict(mean=float('nan'), half_width=float('nan'), n=0,
                    std=float('nan'))
    mean = float(x.mean())
    if n == 1:
        return dict(mean=mean, half_width=float('inf'), n=1,
                    std=float('nan'))
    from scipy import stats
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))
    return dict(mean=mean, half_width=half, n=n, std=std)


def summarize(runs: List[dict], arms: List[str], rare_fraction: float
              ) -> dict:
    ok = [r for r in runs if r.get('metrics')]
    if not ok:
        return {}
    classes = ok[0]['classes']
    gt = np.asarray(ok[0]['metrics']['gt_pixels'])
    frac = gt / max(1.0, gt.sum())
    rare = [i for i in range(len(classes)) if frac[i] < rare_fraction]
    ref = arms[0]
    by = {a: {r['seed']: r for r in ok if r['arm'] == a} for a in arms}
    out = dict(reference=ref, rare_classes=[classes[i] for i in rare],
               arms={})
    for a in arms:
        seeds = sorted(by[a])
        miou = [by[a][s]['metrics']['mIoU'] for s in seeds]
        mf = [by[a][s]['metrics']['mFscore'] for s in seeds]
        rare_m = [float(np.nanmean([by[a][s]['metrics']['IoU'][i]
                                    for i in rare])) if rare else float('nan')
                  for s in seeds]
        common = [s for s in seeds if s in by[ref]]
        delta = [by[a][s]['metrics']['mIoU'] - by[ref][s]['metrics']['mIoU']
                 for s in common]
        per_class = {
            classes[i]: t_interval([by[a][s]['metrics']['IoU'][i]
                                    for s in seeds])
            for i in range(len(classes))}
        out['arms'][a] = dict(
            seeds=seeds, mIoU=t_interval(miou), mIoU_values=miou,
            mFscore=t_interval(mf), rare_mIoU=t_interval(rare_m),
            delta_mIoU_vs_ref=t_interval(delta), per_class_IoU=per_class,
            mmseg_val_mIoU=[by[a][s].get('mmseg_val_mIoU') for s in seeds],
            wall_s=[by[a][s].get('wall_s') for s in seeds])
    return out


def _fmt(ci: dict) -> str:
    if ci['n'] == 0:
        return 'n/a'
    return f"{ci['mean']:6.2f} +- {ci['half_width']:5.2f}"


def print_summary(summary: dict) -> None:
    if not summary:
        print('no finished runs')
        return
    ref = summary['reference']
    print(f"\nmIoU (%), mean +- 95% CI (t, over seeds); delta = paired "
          f"difference to {ref!r}; rare = {summary['rare_classes']}")
    print(f"{'arm':<12}{'n':>3}  {'mIoU':>16}  {'delta vs ' + ref:>16}  "
          f"{'rare mIoU':>16}  {'mFscore':>16}")
    for a, s in summary['arms'].items():
        print(f"{a:<12}{s['mIoU']['n']:>3}  {_fmt(s['mIoU']):>16}  "
              f"{_fmt(s['delta_mIoU_vs_ref']):>16}  "
              f"{_fmt(s['rare_mIoU']):>16}  {_fmt(s['mFscore']):>16}")
    print('\nper-class IoU of the rare classes (mean +- 95% CI):')
    arms = list(summary['arms'])
    print(f"{'class':<16}" + ''.join(f'{a:>18}' for a in arms))
    for c in summary['rare_classes']:
        print(f'{c:<16}' + ''.join(
            f"{_fmt(summary['arms'][a]['per_class_IoU'][c]):>18}"
            for a in arms))


# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    arms = [_arm_name(a) for a in args.arms]
    configs = {_arm_name(a): _arm_config(a) for a in args.arms}
    out_path = args.out or osp.join(args.work_dir, 'results.json')
    jobs = []
    for seed in args.seeds:  # seed-major: partial results cover all arms
        for arm in arms:
            config = configs[arm]
            iters = args.iters or _max_iters(config)
            wd = osp.abspath(osp.join(args.work_dir, arm, f'seed{seed}'))
            jobs.append(dict(arm=arm, seed=seed, config=config, iters=iters,
                             work_dir=wd))

    def train(job: dict) -> dict:
        rec = dict(job)
        ckpt = _final_ckpt(job['work_dir'], job['iters'])
        if not args.summarize_only and (ckpt is None or args.force):
            print(f"[train] {job['arm']} seed {job['seed']} "
                  f"({job['iters']} iters) -> {job['work_dir']}", flush=True)
            rec.update(train_one(job['config'], job['work_dir'], job['seed'],
                                 job['iters'], args))
            print(f"[done]  {job['arm']} seed {job['seed']} rc="
                  f"{rec['returncode']} {rec['wall_s']:.0f}s", flush=True)
            with open(osp.join(job['work_dir'], 'train_time.json'), 'w') as f:
                json.dump(dict(wall_s=rec['wall_s']), f)
        return rec

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(train, jobs))
    for rec in runs:  # evaluation: serial, in this process
        ckpt = _final_ckpt(rec['work_dir'], rec['iters'])
        if ckpt is None:
            continue
        cache = osp.join(rec['work_dir'], 'eval.json')
        if osp.isfile(cache) and osp.getmtime(cache) > osp.getmtime(ckpt):
            with open(cache) as f:
                ev = json.load(f)
        else:
            ev = evaluate(rec['config'], ckpt, args.data_root)
            with open(cache, 'w') as f:
                json.dump(ev, f)
        rec['classes'] = ev['classes']
        rec['confusion'] = ev['confusion']
        rec['metrics'] = metrics_from_confusion(np.asarray(ev['confusion']))
        rec['mmseg_val_mIoU'] = mmseg_val_miou(rec['work_dir'])
        timing = osp.join(rec['work_dir'], 'train_time.json')
        if 'wall_s' not in rec and osp.isfile(timing):
            with open(timing) as f:
                rec['wall_s'] = json.load(f)['wall_s']
    summary = summarize(runs, arms, args.rare_fraction)
    print_summary(summary)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    with open(out_path, 'w') as f:
        json.dump(dict(args=vars(args), runs=[
            {k: v for k, v in r.items() if k != 'confusion'} for r in runs],
            summary=summary), f, indent=1)
    print(f'\nwrote {out_path}')
    failed = [r for r in runs if not r.get('metrics')]
    for r in failed:
        print(f"FAILED: {r['arm']} seed {r['seed']} (see "
              f"{r['work_dir']}/train_stdout.txt)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
