#!/usr/bin/env python
"""Train a segmentor with an MMSegmentation config (segreg plugins included).

Examples:
    # the CPU demo (generate data first: python tools/make_demo_data.py)
    python tools/train.py configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py

    # 4 GPUs with torchrun, overriding the schedule
    bash tools/dist_train.sh CONFIG 4 --cfg-options train_cfg.max_iters=40000

    # continue a killed run from the last checkpoint in its work dir
    python tools/train.py CONFIG --work-dir work_dirs/x --resume

    # on SLURM: a batch job that checkpoints and requeues itself before its
    # time limit (see the header of tools/slurm_train.sh)
    GPUS=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG

Logs, checkpoints and TensorBoard events go to the work dir
(work_dirs/<config name> unless --work-dir is given); watch them with
`tensorboard --logdir work_dirs`.

Signals: SIGTERM or SIGUSR1 (`sbatch --signal=USR1@SECS`) ends training
after the current iteration with a checkpoint, every rank at the same
iteration; `--resume` then continues as if nothing had happened
(bit-identical on CPU). A signal in the last iteration lets the run finish.

Pretrained weights (model.pretrained, e.g. open-mmlab://resnet50_v1c) are
fetched into torch's hub cache ($TORCH_HOME/hub/checkpoints) before any data
is read; without a network the error names the file, its URL and the key for
a local copy (--cfg-options model.pretrained=/path/file.pth). A resumed run
needs no pretrained weights.

Exit status:
    0   training finished
    75  stopped by SIGTERM / SIGUSR1 after writing a checkpoint: run again
        with --resume (under torchrun the ranks exit 0 and
        tools/dist_train.sh exits 75)
    2   a mistake, in one to three lines (--debug or SEGREG_DEBUG=1: with the
        traceback): before any data is read, a config mistake (unknown
        --cfg-options key or registry type, invalid loss option, num_classes
        of a loss and its head disagree), a missing dataset, pretrained
        weights that cannot be fetched, an mmcv without compiled ops; later,
        a checkpoint of another model or a bad image or label
    1   anything else (with its traceback)
See docs/reliability.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
import traceback

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

# albumentations (imported by segreg's transforms) asks PyPI for a newer
# version at import: a warning, or a timeout, on nodes without a network
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')


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
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the full traceback of an error that is otherwise reported '
        'in one line (also: environment variable SEGREG_DEBUG=1)')
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
    if any(k.startswith('custom_imports') for k in args.cfg_options or {}):
        # Config.fromfile imported the file's custom_imports only
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
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


def debug_wanted(args: argparse.Namespace) -> bool:
    """--debug, or SEGREG_DEBUG set to anything but '' / '0'."""
    return bool(getattr(args, 'debug', False)) or \
        os.environ.get('SEGREG_DEBUG', '') not in ('', '0')


def fail(exc: BaseException, debug: bool, message=None) -> int:
    """Print ``error: <message>`` (the traceback first with ``debug``) on
    stderr and return the exit status 2."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    print(f'error: {message if message is not None else exc}',
          file=sys.stderr)
    return 2


def _local_rank(launcher: str) -> int:
    # under srun, LOCAL_RANK is set by mmengine only when the runner starts
    if launcher == 'slurm' and 'SLURM_LOCALID' in os.environ:
        return int(os.environ['SLURM_LOCALID'])
    return int(os.environ.get('LOCAL_RANK', 0) or 0)


def prepare_pretrained(cfg: Config, launcher: str) -> None:
    """Resumed runs skip the pretrained weights; others get them now.

    A resumed run replaces every weight by the checkpoint's, so it needs
    neither the file nor a network (a requeued job on an offline node).
    Otherwise the first process of each node fetches missing remote
    weights into torch's hub cache before any data is loaded; a failure is
    a :class:`PretrainedWeightsError` in one line.
    """
    from segreg.utils.checkpoint import (drop_pretrained,
                                         ensure_pretrained_weights,
                                         find_resumable_checkpoint)
    if cfg.get('resume'):
        path = cfg.get('load_from') or \
            find_resumable_checkpoint(cfg.work_dir)[0]
        if path:
            dropped = drop_pretrained(cfg)
            if dropped:
                print_log(f'resuming from {path}: the pretrained weights '
                          f'({", ".join(dropped)}) are not loaded',
                          logger='current')
            return
    ensure_pretrained_weights(cfg, download=_local_rank(launcher) == 0)


def main(argv=None) -> int:
    args = parse_args(argv)
    debug = debug_wanted(args)
    try:
        import segreg  # noqa: F401  (registers segreg modules)
    except ImportError as exc:  # the stack (segreg/_stack.py)
        return fail(exc, debug)

    from segreg.utils import ConfigError, DataRootError, check_data_roots
    from segreg.utils.checkpoint import PretrainedWeightsError
    from segreg.utils.config import check_model_cfg
    from segreg.utils.dist import init_cpu_process_group
    try:
        cfg = build_cfg(args)
        # before any data is read: the model section, then the weights
        check_model_cfg(cfg)
        prepare_pretrained(cfg, args.launcher)
        check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
    except (ConfigError, DataRootError, PretrainedWeightsError,
            FileNotFoundError, ValueError) as exc:
        return fail(exc, debug)
    init_cpu_process_group(args.launcher)
    return run_training(cfg, debug)


def run_training(cfg: Config, debug: bool = False) -> int:
    """Build the runner and train; returns the exit status.

    0 when training finished, :data:`PREEMPTED_EXIT_STATUS` (75) when a
    SIGTERM / SIGUSR1 stopped it after a checkpoint
    (``SegregRunner.preempted_by``). A bad image or label
    (``BadSampleError``, also when a DataLoader worker raised it), a
    checkpoint of another model or an unregistered type met while the
    runner builds its parts end the run with one line and status 2. The
    process group is destroyed before returning, so every torchrun rank
    exits cleanly (segreg.utils.dist.teardown_process_group).
    """
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS

    from segreg.datasets import BadSampleError
    from segreg.engine.hooks import PREEMPTED_EXIT_STATUS
    from segreg.utils import CheckpointMismatchError, check_checkpoint_compatible
    from segreg.utils.config import explain_registry_error
    from segreg.utils.dist import teardown_process_group
    done = False
    try:
        runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
                  RUNNERS.build(cfg))
        if cfg.get('load_from'):
            try:
                check_checkpoint_compatible(runner.model, cfg.load_from)
            except (CheckpointMismatchError, FileNotFoundError) as exc:
                return fail(exc, debug)
        runner.train()
        done = True
    except BadSampleError as exc:
        return fail(exc, debug, exc.line)
    except KeyError as exc:  # e.g. an unknown hook or optimizer type
        why = explain_registry_error(exc, cfg)
        if why is None:
            raise
        return fail(exc, debug, why)
    finally:
        teardown_process_group(barrier=done)
    return PREEMPTED_EXIT_STATUS if getattr(runner, 'preempted_by', None) \
        else 0


def exit_status(status: int) -> int:
    """The status this process exits with, recorded for the launcher script.

    When ``$SEGREG_STATUS_FILE`` names an existing file (tools/dist_train.sh
    and tools/slurm_train.sh create one), the run's status is written to it.
    Under torchrun a pre-empted rank exits 0 instead of 75: torchrun reports
    any other status as a failure (or restarts the ranks); dist_train.sh
    reads the file and exits 75.
    """
    from segreg.engine.hooks import PREEMPTED_EXIT_STATUS
    from segreg.utils.checkpoint import atomic_write_text
    path = os.environ.get('SEGREG_STATUS_FILE')
    if path and osp.isfile(path):
        try:
            atomic_write_text(path, f'{status}\n')
        except OSError:  # pragma: no cover - a read-only or vanished folder
            pass
    if status == PREEMPTED_EXIT_STATUS and 'TORCHELASTIC_RUN_ID' in os.environ:
        return 0
    return status


if __name__ == '__main__':
    status = main()
    try:
        from segreg.utils.dist import exit_process
        status = exit_status(status)
    except ImportError:  # the stack itself is broken (main reported it)
        sys.exit(status)
    exit_process(status)
