"""The study presets of tools/ablate.py (a helper module, not a script).

What ``--dataset``, ``--iters``, ``--batch`` and ``--ranks`` add to the
arms x seeds runner: the short arm names of each dataset's configs, the
generation of a missing dataset, the default work root and the
``--cfg-options`` of a changed schedule. Nothing here imports torch or
segreg, so ``--list-arms`` and ``--print-commands`` stay quick and their
output clean.
"""
from __future__ import annotations

import glob
import math
import os.path as osp
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = 'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
AERIAL = 'deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py'
COLLAGE = 'deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
COLLAGE_FT = 'deeplabv3plus_r18-tiny_1xb8-500_collage-80x80.py'
COLLAGE_NYSTROM = 'r18-tiny_1xb8-2k_collage-80x80.py'
#: dataset -> its generator, tools/make_demo_data.py --kind
DATA_KIND = {'demo': 'scenes', 'aerial': 'aerial', 'collage': 'collage'}
DATASETS = tuple(DATA_KIND)
#: arms and seeds of ``--dataset D`` when --arms / --seeds are not given
DEFAULT_ARMS = ('ce', 'dual_iou', 'lovasz')
DEFAULT_SEEDS = (0, 1, 2)
#: dataset -> file-name suffix of its variant configs
_VARIANT_SUFFIX = {'demo': '_r18-tiny_demo-96x96.py',
                   'aerial': '_r18-tiny_aerial-80x80.py'}
#: images per process of every shipped CPU config (the batch the schedules
#: were written for)
BASE_BATCH = 8


def known_arms(dataset: str) -> Dict[str, str]:
    """The named arms of a dataset preset.

    Args:
        dataset: ``'demo'``, ``'aerial'`` or ``'collage'``.

    Returns:
        Arm name -> config path (relative to the repository root), ``ce``
        first.

    Raises:
        ValueError: For another dataset.
    """
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
            'dual_iou_ratio': f'configs/demo/dualreg-iou-ratio_{AERIAL}',
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
                    ('dual_iou_ratio', 'dualreg-iou-ratio_'),
                    ('dual_iou_ratio_w05', 'dualreg-iou-ratio-w05_'),
                    ('dual_fbeta05_ratio', 'dualreg-fbeta05-ratio_'),
                    ('dual_iou_dataset_eta0025',
                     'dualreg-iou-dataset-eta0025_'),
                    ('dual_iou_dataset_mumax2',
                     'dualreg-iou-dataset-mumax2_'),
                    ('dual_iou_w05', 'dualreg-iou-w05_'),
                    ('dual_fbeta', 'dualreg-fbeta_'))}
        # the Nystrom context head, without its context, with DualIoU
        for name, prefix in (('nystrom', 'nystrom_'),
                             ('nystrom_noctx', 'nystrom-noctx_'),
                             ('nystrom_gate1', 'nystrom-gate1_'),
                             ('nystrom_dual_iou', 'nystrom-dualreg-iou_')):
            arms[name] = f'configs/realistic/{prefix}{COLLAGE_NYSTROM}'
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


def list_arms(datasets: Sequence[str]) -> str:
    """The ``--list-arms`` text: one ``name  config`` line per arm, under a
    heading per dataset when there are several."""
    lines = []
    for dataset in datasets:
        if len(datasets) > 1:
            lines.append(f'--dataset {dataset}:')
        lines += [f'{name:<24} {cfg}'
                  for name, cfg in known_arms(dataset).items()]
    return '\n'.join(lines) + '\n'


def arm_specs(dataset: Optional[str], arms: Sequence[str]) -> List[str]:
    """``NAME=CONFIG`` specs of ``--arms``, named arms looked up in the
    dataset's table (config paths relative to the working directory).

    Raises:
        ValueError: For a name that is not in the table, or a name without
            ``--dataset``.
    """
    table = known_arms(dataset) if dataset else {}
    specs = []
    for arm in arms:
        if '=' in arm:
            specs.append(arm)
        elif arm in table:
            specs.append(f'{arm}={osp.relpath(osp.join(REPO, table[arm]))}')
        elif dataset:
            raise ValueError(f'unknown arm {arm!r} for --dataset {dataset}; '
                             f'known: {sorted(table)} (--list-arms)')
        else:
            raise ValueError(f'--arms {arm!r}: expected NAME=CONFIG, or a '
                             f'named arm with --dataset (--list-arms)')
    return specs


def default_work_root(dataset: Optional[str], batch: Optional[int],
                      ranks: int) -> str:
    """``work_dirs/ablation`` or ``work_dirs/regularizer_experiment/
    DATASET``, with ``_bBxR`` appended when --batch or --ranks change the
    global batch (each batch size keeps its own runs)."""
    root = (osp.join('work_dirs', 'regularizer_experiment', dataset)
            if dataset else osp.join('work_dirs', 'ablation'))
    if batch is None and ranks == 1:
        return root
    return f'{root}_b{batch or BASE_BATCH}x{ranks}'


def schedule_options(cfg, iters: Optional[int], batch: int,
                     ranks: int = 1) -> List[str]:
    """``--cfg-options`` of a run at another batch: equal images seen.

    With the global batch ``G = batch x ranks`` and the base batch ``b``
    of the config (8): iterations, warm-up end, validation and checkpoint
    intervals times ``b / G``; the learning rate times ``sqrt(G / b)``
    (the square-root rule for adaptive optimisers: the variance of a batch
    gradient falls like 1 / G, and Adam's step is normalised by its second
    moment; Malladi et al., NeurIPS 2022).

    Args:
        cfg: The first arm's config (every arm of a study shares the
            schedule).
        iters: Iterations at the base batch, or None for the config's.
        batch: Images per process.
        ranks: Processes (the global batch is ``batch x ranks``).

    Raises:
        ValueError: If ``batch`` or ``ranks`` is below 1.
    """
    if batch < 1 or ranks < 1:
        raise ValueError(f'--batch and --ranks must be >= 1, got {batch}, '
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


def study_options(config: str, iters: Optional[int], batch: Optional[int],
                  ranks: int) -> List[str]:
    """The ``--cfg-options`` that --iters / --batch / --ranks add.

    Args:
        config: The first arm's config file (read only with --batch or
            --ranks).
        iters: ``--iters`` (iterations at the base batch), or None.
        batch: ``--batch``, or None (the config's).
        ranks: ``--ranks``.

    Returns:
        The schedule at the global batch ``batch x ranks``
        (:func:`schedule_options`); with --iters alone, the new length and
        the end of the poly decay; else nothing.
    """
    if batch is not None or ranks > 1:
        from mmengine import Config
        cfg = Config.fromfile(config, import_custom_modules=False)
        return schedule_options(cfg, iters, batch or BASE_BATCH, ranks)
    if iters:
        return [f'train_cfg.max_iters={iters}',
                f'param_scheduler.1.end={iters}']
    return []


def ensure_data(dataset: str, cfg_options: Sequence[str] = (),
                run: Callable = subprocess.run) -> bool:
    """Generate the dataset with tools/make_demo_data.py if it is missing.

    Nothing is made when the user points the configs elsewhere (a
    ``data_root`` in ``cfg_options``).

    Args:
        dataset: ``'demo'``, ``'aerial'`` or ``'collage'``.
        cfg_options: The study's ``--cfg-options``.
        run: The subprocess runner (a seam for the tests).

    Returns:
        Whether the generator was run.
    """
    if any('data_root' in o for o in cfg_options):
        return False
    from mmengine import Config  # the root is the one the configs read
    ce = Config.fromfile(osp.join(REPO, known_arms(dataset)['ce']),
                         import_custom_modules=False)
    root, kind = ce.train_dataloader.dataset.data_root, DATA_KIND[dataset]
    if osp.isdir(root):
        return False
    print(f'[ablate] {root} does not exist: generating it '
          f'(tools/make_demo_data.py --kind {kind})', flush=True)
    run([sys.executable, osp.join(REPO, 'tools', 'make_demo_data.py'),
         '--kind', kind, '--out', root], check=True)
    return True
