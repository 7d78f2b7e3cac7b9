#!/usr/bin/env python
"""The regularizer study protocol (issue 7): named arms x seeds on a dataset.

A preset over ``tools/ablate.py``: it maps short arm names to the project's
configs for one of the two CPU-sized datasets and runs ablate with them, so
every (arm, seed) is trained at equal iterations, evaluated with
``tools/test.py`` and summarised by ``tools/compare.py``: mIoU (and mFscore,
mAcc, aAcc) mean +- 95% CI over seeds, the paired delta against the first
arm (CE) with its CI and p-value, an image-bootstrap interval, and per-class
IoU sorted rarest class first (report.md / report.html in the report folder).
Finished pairs are skipped and interrupted ones resumed, as with ablate.

Datasets (``tools/make_demo_data.py`` makes them; a missing one is generated
before the first run; see data/README.md):
  collage  the realistic benchmark: 12 classes of real photographs and real
           object cut-outs shipped with scikit-image, 4 of them under 1% of
           the pixels (80x80 crops, 2000 iterations; configs/realistic/)
  demo     12 classes, scenes with 8 small "thing" classes (96x96)
  aerial   10 classes, a differently made generator: Voronoi land cover,
           thin roads and rivers, tiny objects (80x80)

Arms: ``ce``, ``dual_iou``, ``lovasz`` on every dataset; on the demo also
``dual_fbeta``, ``smeasure``, ``dice`` (mmseg's); on collage and aerial also
``jml`` (Jaccard metric loss), ``jml_mix`` (0.25 CE + 0.75 JML) and ``dice``
(masked Dice); on collage also ``dual_iou_dataset`` (solver='dataset'),
``dual_iou_dataset_eta0025`` (its dual step divided by 4, for ``--batch 2``),
``dual_iou_dataset_mumax2`` (its dual domain capped at 2 instead of 10),
``dual_iou_w05`` (the default at half weight), ``dual_fbeta`` (DualFbetaLoss,
F1) and the fine-tuning arms ``ce_ft``, ``dual_iou_ft``, ``lovasz_ft``,
``jml_ft`` (500 iterations from a CE checkpoint: example below); and every
variant config under ``configs/demo/variants/`` as ``dual_iou_<variant>`` on
demo and aerial (``--list-arms``).
Anything else (``--seeds``, ``--jobs``, ``--dry-run``, ``--print-commands``,
``--gpus``, ``--cfg-options``, ``--force``, ``--bootstrap``) goes to ablate.

Examples:
    # CE vs CE+DualIoU vs CE+Lovasz, 3 seeds, 2 runs at a time (CPU)
    python tools/run_regularizer_experiment.py --jobs 2

    # the second dataset
    python tools/run_regularizer_experiment.py --dataset aerial --jobs 2

    # the realistic benchmark with the anchors
    python tools/run_regularizer_experiment.py --dataset collage \
        --arms ce dual_iou lovasz jml

    # variants against CE
    python tools/run_regularizer_experiment.py --arms ce dual_iou \\
        dual_iou_skip dual_iou_direct dual_iou_stride4 --jobs 2

    # the fine-tuning protocol: each seed from its CE checkpoint, 25% more
    python tools/run_regularizer_experiment.py --dataset collage --iters 500 \
        --arms ce_ft dual_iou_ft lovasz_ft jml_ft --cfg-options \
        load_from=work_dirs/regularizer_experiment/collage/ce/seed{seed}/iter_2000.pth

    # bigger runs: 4x the iterations, as SLURM array jobs on 1 GPU each
    python tools/run_regularizer_experiment.py --iters 4000 \\
        --print-commands slurm --gpus 1 > study.sbatch
"""
from __future__ import annotations

import argparse
import glob
import math
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = 'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
AERIAL = 'deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py'
COLLAGE = 'deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
COLLAGE_FT = 'deeplabv3plus_r18-tiny_1xb8-500_collage-80x80.py'
#: dataset -> its generator, tools/make_demo_data.py --kind
_DATA_KIND = {'demo': 'scenes', 'aerial': 'aerial', 'collage': 'collage'}

#: dataset -> file-name suffix of its variant configs
_VARIANT_SUFFIX = {'demo': '_r18-tiny_demo-96x96.py',
                   'aerial': '_r18-tiny_aerial-80x80.py'}


def known_arms(dataset: str) -> Dict[str, str]:
    """Arm name -> config path (relative to the repository root)."""
    if dataset == 'demo':
        arms = {
            'ce': f'configs/demo/{DEMO}',
            'dual_iou': f'configs/demo/dualreg-iou_{DEMO}',
            'dual_fbeta': f'configs/demo/dualreg-fbeta_{DEMO}',
            'smeasure': f'configs/demo/dualreg-smeasure_{DEMO}',
            'lovasz': f'configs/demo/lovasz_{DEMO}',
            'dice': f'configs/demo/dice_{DEMO}',
        }
    elif dataset == 'aerial':
        arms = {
            'ce': f'configs/demo/{AERIAL}',
            'dual_iou': f'configs/demo/dualreg-iou_{AERIAL}',
            'lovasz': f'configs/demo/lovasz_{AERIAL}',
            'jml': f'configs/demo/jml_{AERIAL}',
            'jml_mix': f'configs/demo/jml-mix_{AERIAL}',
            'dice': f'configs/demo/dice_{AERIAL}',
        }
    elif dataset == 'collage':
        arms = {name: f'configs/realistic/{prefix}{COLLAGE}'
                for name, prefix in (
                    ('ce', ''), ('dual_iou', 'dualreg-iou_'),
                    ('lovasz', 'lovasz_'), ('jml', 'jml_'),
                    ('jml_mix', 'jml-mix_'), ('dice', 'dice_'),
                    ('dual_iou_dataset', 'dualreg-iou-dataset_'),
                    ('dual_iou_dataset_eta0025',
                     'dualreg-iou-dataset-eta0025_'),
                    ('dual_iou_dataset_mumax2',
                     'dualreg-iou-dataset-mumax2_'),
                    ('dual_iou_w05', 'dualreg-iou-w05_'),
                    ('dual_fbeta', 'dualreg-fbeta_'))}
        # the fine-tuning protocol: 500 iterations from a CE checkpoint
        # (--cfg-options load_from=.../ce/seed{seed}/iter_2000.pth)
        for name, prefix in (('ce', 'ft-ce_'), ('dual_iou', 'ft-dualreg-iou_'),
                             ('lovasz', 'ft-lovasz_'), ('jml', 'ft-jml_')):
            arms[f'{name}_ft'] = (f'configs/realistic/finetune/{prefix}'
                                  f'{COLLAGE_FT}')
        return arms
    else:
        raise ValueError(f'unknown dataset {dataset!r}')
    suffix = _VARIANT_SUFFIX[dataset]
    pattern = osp.join(REPO, 'configs', 'demo', 'variants',
                       f'dualiou-*{suffix}')
    for path in sorted(glob.glob(pattern)):
        variant = osp.basename(path)[len('dualiou-'):-len(suffix)]
        name = 'dual_iou_' + variant.replace('-', '_').replace('.', '')
        arms[name] = osp.relpath(path, REPO)
    return arms


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', choices=['demo', 'aerial', 'collage'],
                   default='demo')
    p.add_argument('--arms', nargs='+', default=['ce', 'dual_iou', 'lovasz'],
                   help='arm names (the first is the baseline) or '
                   'NAME=CONFIG; see --list-arms')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--iters', type=int, default=None,
                   help='training iterations of every run (default: the '
                   "configs' 1000, 2000 on collage); the poly decay ends "
                   'there too')
    p.add_argument('--batch', type=int, default=None,
                   help='images per process (default: the configs\' 8). '
                   'The schedule keeps the images seen: with a global '
                   'batch G = BATCH x RANKS the iterations, warm-up, '
                   'validation and checkpoint intervals scale by 8 / G and '
                   'the learning rate by sqrt(G / 8) (square-root scaling '
                   'for AdamW; docs/experiments.md, batch-size sweep)')
    p.add_argument('--ranks', type=int, default=1,
                   help='processes per training run (torchrun --standalone '
                   'on this machine; gloo on CPU): a simulated DDP run with '
                   'the global batch BATCH x RANKS')
    p.add_argument('--work-root', default=None,
                   help='default: work_dirs/regularizer_experiment/DATASET '
                   '(DATASET_bBxR with --batch / --ranks)')
    p.add_argument('--list-arms', action='store_true',
                   help='print the arms of --dataset and exit')
    return p.parse_known_args(argv)


#: images per process of every shipped CPU config (the batch the schedules
#: were written for)
BASE_BATCH = 8


def schedule_options(cfg, iters: Optional[int], batch: int,
                     ranks: int = 1) -> List[str]:
    """``--cfg-options`` of the batch-size sweep: equal images seen.

    With the global batch ``G = batch x ranks`` and the base batch ``b``
    of the config (8): iterations, warm-up end, validation and checkpoint
    intervals times ``b / G``; the learning rate times ``sqrt(G / b)``
    (the square-root rule for adaptive optimisers: the variance of a batch
    gradient falls like 1 / G, and Adam's step is normalised by its second
    moment; Malladi et al., NeurIPS 2022). ``iters`` is the length
    at the base batch (default: the config's).

    Args:
        cfg: The baseline arm's config (every arm of a study shares the
            schedule).
        iters: Iterations at the base batch, or None.
        batch: Images per process.
        ranks: Processes (the global batch is ``batch x ranks``).
    """
    if batch < 1 or ranks < 1:
        raise SystemExit(f'--batch and --ranks must be >= 1, got {batch}, '
                         f'{ranks}')
    base = int(cfg.train_dataloader.batch_size)
    g = batch * ranks
    f = base / g
    n = int(round((iters or cfg.train_cfg.max_iters) * f))
    sched = cfg.param_scheduler
    warm = int(round(sched[0]['end'] * f))
    val = max(1, int(round(cfg.train_cfg.get('val_interval', n) * f)))
    ckpt = max(1, int(round(cfg.default_hooks.checkpoint.interval * f)))
    lr = cfg.optim_wrapper.optimizer.lr * math.sqrt(g / base)
    return [f'train_dataloader.batch_size={batch}',
            f'train_cfg.max_iters={n}', f'train_cfg.val_interval={val}',
            f'param_scheduler.0.end={warm}',
            f'param_scheduler.1.begin={warm}', f'param_scheduler.1.end={n}',
            f'optim_wrapper.optimizer.lr={lr:.6g}',
            f'default_hooks.checkpoint.interval={ckpt}']


def ablate_argv(args, rest: List[str]) -> List[str]:
    """The tools/ablate.py command line of this study."""
    table = known_arms(args.dataset)
    specs = []
    for arm in args.arms:
        if '=' in arm:
            specs.append(arm)
        elif arm in table:  # relative to the working directory
            specs.append(f'{arm}={osp.relpath(osp.join(REPO, table[arm]))}')
        else:
            raise SystemExit(f'unknown arm {arm!r} for --dataset '
                             f'{args.dataset}; known: {sorted(table)}')
    batch = getattr(args, 'batch', None)
    ranks = getattr(args, 'ranks', 1) or 1
    name = args.dataset if batch is None and ranks == 1 else \
        f'{args.dataset}_b{batch or BASE_BATCH}x{ranks}'
    root = args.work_root or osp.join('work_dirs', 'regularizer_experiment',
                                      name)
    argv = ['--arms', *specs, '--seeds', *map(str, args.seeds),
            '--work-root', root]
    if ranks > 1:
        argv += ['--ranks', str(ranks)]
    opts = []
    if batch is not None or ranks > 1:
        from mmengine import Config
        cfg = Config.fromfile(specs[0].split('=', 1)[1])
        opts = schedule_options(cfg, args.iters, batch or BASE_BATCH, ranks)
    elif args.iters:
        opts = [f'train_cfg.max_iters={args.iters}',
                f'param_scheduler.1.end={args.iters}']
    if opts:
        if '--cfg-options' in rest:  # merge with the user's options
            i = rest.index('--cfg-options')
            rest = rest[:i + 1] + opts + rest[i + 1:]
        else:
            rest = rest + ['--cfg-options'] + opts
    return argv + rest


def ensure_data(dataset: str, rest: List[str], run=subprocess.run) -> bool:
    """Generate the dataset with tools/make_demo_data.py if it is missing.

    Nothing is made for ``--dry-run`` / ``--print-commands`` or when the
    user points the configs elsewhere (a ``data_root`` in ``rest``).

    Args:
        dataset: ``'demo'``, ``'aerial'`` or ``'collage'``.
        rest: the arguments that go to ablate.
        run: the subprocess runner (a seam for the tests).

    Returns:
        Whether the generator was run.
    """
    if (any(a.startswith(('--dry-run', '--print-commands')) for a in rest)
            or any('data_root' in a for a in rest)):
        return False
    from mmengine import Config  # the root is the one the configs read
    ce = Config.fromfile(osp.join(REPO, known_arms(dataset)['ce']),
                         import_custom_modules=False)
    root, kind = ce.train_dataloader.dataset.data_root, _DATA_KIND[dataset]
    if osp.isdir(root):
        return False
    print(f'[study] {root} does not exist: generating it '
          f'(tools/make_demo_data.py --kind {kind})', flush=True)
    run([sys.executable, osp.join(REPO, 'tools', 'make_demo_data.py'),
         '--kind', kind, '--out', root], check=True)
    return True


def main(argv=None) -> int:
    args, rest = parse_args(argv)
    if args.list_arms:
        for name, cfg in known_arms(args.dataset).items():
            print(f'{name:<24} {cfg}')
        return 0
    ensure_data(args.dataset, rest)
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import ablate
    return ablate.main(ablate_argv(args, rest))


if __name__ == '__main__':
    sys.exit(main())
