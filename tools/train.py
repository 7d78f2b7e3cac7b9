#!/usr/bin/env python
"""Train a segmentor with an MMSegmentation config (segreg plugins included).

Examples:
    # the CPU demo (generate data first: python tools/make_demo_data.py)
    python tools/train.py configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py

    # 4 GPUs with torchrun, overriding the schedule
    bash tools/dist_train.sh CONFIG 4 --cfg-options train_cfg.max_iters=40000

    # continue a killed run from the last checkpoint in its work dir
    python tools/train.py CONFIG --work-dir work_dirs/x --resume

Logs, checkpoints and TensorBoard events go to the work dir
(work_dirs/<config name> unless --work-dir is given); watch them with
`tensorboard --logdir work_dirs`.
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='folder for logs, checkpoints and TensorBoard events '
        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume training with all state (optimizer, scheduler, dual '
        'variables, iteration). Without a value: the latest checkpoint in '
        'the work dir; with a value: that checkpoint file')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (AmpOptimWrapper, dynamic scale)')
    parser.add_argument(
        '--seed', type=int, default=None,
        help='random seed (overrides randomness.seed of the config)')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='deterministic cuDNN and torch algorithms '
        '(randomness.deterministic=True): needed for bit-identical runs and '
        'resumes on GPU, slower; see docs/reliability.md')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_cfg.max_iters=2000 '
        'model.decode_head.loss_decode.0.loss_weight=0.5; keys must already '
        'exist in the config (see --allow-new-keys); list values as '
        'key="[a,b]", no white space')
    parser.add_argument(
        '--allow-new-keys',
        action='store_true',
        help='let --cfg-options add keys that the config does not have')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher: none (one process), pytorch (torchrun, see '
        'tools/dist_train.sh) or slurm (srun, see tools/slurm_train.sh)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line options (checked)."""
    from segreg.utils import merge_cfg_options
    from segreg.utils.dist import adapt_cfg_for_cpu_distributed
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options, args.allow_new_keys)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.seed is not None:
        cfg.randomness = dict(cfg.get('randomness', {}), seed=args.seed)
    if args.deterministic:
        cfg.randomness = dict(cfg.get('randomness', {}), deterministic=True)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config.',
                      logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, '
                             f'got {wrapper!r}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume == 'auto':
        cfg.resume = True
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    adapt_cfg_for_cpu_distributed(cfg, args.launcher)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    import segreg  # noqa: F401  (registers segreg modules before building)

    from segreg.utils import ConfigError, DataRootError, check_data_roots
    from segreg.utils.dist import init_cpu_process_group
    try:
        cfg = build_cfg(args)
        check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
    except (ConfigError, DataRootError, FileNotFoundError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    init_cpu_process_group(args.launcher)
    return run_training(cfg)


def run_training(cfg: Config) -> int:
    """Build the runner and train; returns the exit status.

    A bad image or label (``BadSampleError``, also when a DataLoader worker
    raised it) ends the run with its one-line message and status 2. The
    process group is destroyed before returning, so every torchrun rank
    exits cleanly (segreg.utils.dist.teardown_process_group).
    """
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS

    from segreg.datasets import BadSampleError
    from segreg.utils import CheckpointMismatchError, check_checkpoint_compatible
    from segreg.utils.dist import teardown_process_group
    done = False
    try:
        runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
                  RUNNERS.build(cfg))
        if cfg.get('load_from'):
            try:
                check_checkpoint_compatible(runner.model, cfg.load_from)
            except (CheckpointMismatchError, FileNotFoundError) as exc:
                print(f'error: {exc}', file=sys.stderr)
                return 2
        runner.train()
        done = True
    except BadSampleError as exc:
        print(f'error: {exc.line}', file=sys.stderr)
        return 2
    finally:
        teardown_process_group(barrier=done)
    return 0


if __name__ == '__main__':
    from segreg.utils.dist import exit_process
    exit_process(main())
