#!/usr/bin/env python
"""Evaluate a checkpoint: metrics.json, confusion.npy and per-image counts.

Examples:
    # the demo model after `python tools/train.py CONFIG --work-dir W`
    python tools/test.py configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py \\
        W/iter_1000.pth --out W/eval

    # 4 GPUs with torchrun (results are gathered on rank 0)
    python -m torch.distributed.run --nproc_per_node=4 tools/test.py \\
        CONFIG CKPT --out DIR --launcher pytorch

    # also save predicted and ground-truth label PNGs and colour overlays
    python tools/test.py CONFIG CKPT --out DIR --save-preds

Writes to DIR (see docs/evaluation.md):
    metrics.json   aAcc, mIoU, mAcc, mDice, mFscore, mPrecision, mRecall and
                   per-class IoU/Acc/Dice/Fscore/Precision/Recall, in percent
    confusion.npy  (C, C) pixel counts, rows = ground truth, cols = prediction
    per_image.npz  per-image class counts, for bootstrap CIs (tools/compare.py)
                   (a config with ``rate_metrics = dict(target_classes=[..],
                   recall=.., precision=..)`` adds metrics.json["rate_metrics"]:
                   P@R, R@P, ROC-AUC of those classes from the softmax scores,
                   segreg.evaluation.rate_metrics)
    config.py      the config as evaluated
    preds/, gt/, overlays/, preds_index.json   with --save-preds
and prints the tables. A class absent from both prediction and ground truth
is excluded from every mean; a class predicted but absent from the ground
truth scores 0 in every metric (mmseg's mFscore/mAcc drop it instead).

The test set is the config's test_dataloader.

Exit status: 0 evaluated; 2 a mistake found before evaluating (config:
unknown --cfg-options key or registry type, invalid loss option, num_classes
of a loss and its head disagree; missing dataset or checkpoint, a checkpoint
of another model, a bad image or label, an mmcv without compiled ops), in
one line (--debug or SEGREG_DEBUG=1: with the traceback); 1 anything else.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shlex
import sys

from mmengine.config import Config, DictAction

# albumentations (imported by segreg's transforms) asks PyPI for a newer
# version at import: a warning, or a timeout, on nodes without a network
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file the checkpoint was '
                        'trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument(
        '--out',
        help='folder for metrics.json, confusion.npy, per_image.npz '
        '(default: <work-dir>/eval_<checkpoint name>)')
    parser.add_argument(
        '--work-dir',
        help='folder for the test log (default: the --out folder)')
    parser.add_argument(
        '--save-preds',
        action='store_true',
        help='save predicted label PNGs to OUT/preds, the scored ground '
        'truth to OUT/gt, colour overlays to OUT/overlays and their index to '
        'OUT/preds_index.json (the report\'s qualitative grid reads them)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. test_dataloader.dataset.data_root=X; '
        'keys must already exist in the config (see --allow-new-keys)')
    parser.add_argument(
        '--allow-new-keys',
        action='store_true',
        help='let --cfg-options add keys that the config does not have')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher: none (one process), pytorch (torchrun) or slurm')
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the full traceback of an error that is otherwise reported '
        'in one line (also: environment variable SEGREG_DEBUG=1)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def default_out(args: argparse.Namespace) -> str:
    stem = osp.splitext(osp.basename(args.checkpoint))[0]
    base = args.work_dir or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return osp.join(base, f'eval_{stem}')


def build_cfg(args: argparse.Namespace, argv=None) -> Config:
    """Load the config, apply the options and set up the segreg evaluator."""
    from segreg.utils import merge_cfg_options
    from segreg.utils.dist import adapt_cfg_for_cpu_distributed
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'checkpoint {args.checkpoint!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options, args.allow_new_keys)
    if any(k.startswith('custom_imports') for k in args.cfg_options or {}):
        # Config.fromfile imported the file's custom_imports only
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    out = args.out or default_out(args)
    cfg.work_dir = args.work_dir or out
    cfg.load_from = args.checkpoint
    cfg.resume = False
    for key in ('test_dataloader', 'test_cfg'):
        if not cfg.get(key):
            raise ValueError(f'the config has no {key}; tools/test.py '
                             f'evaluates on the test set')
    old = cfg.get('test_evaluator') or {}
    if isinstance(old, (list, tuple)):
        old = old[0] if old else {}
    command = ' '.join(shlex.quote(a) for a in
                       ['python', 'tools/test.py',
                        *(sys.argv[1:] if argv is None else argv)])
    cfg.test_evaluator = dict(
        type='SegregIoUMetric',
        ignore_index=old.get('ignore_index', 255),
        beta=old.get('beta', 1.0),
        out_dir=out,
        pred_dir=osp.join(out, 'preds') if args.save_preds else None,
        overlay_dir=osp.join(out, 'overlays') if args.save_preds else None,
        gt_dir=osp.join(out, 'gt') if args.save_preds else None,
        log_per_class=False,
        meta=dict(config=osp.abspath(args.config),
                  checkpoint=osp.abspath(args.checkpoint),
                  command=command))
    if cfg.get('rate_metrics'):  # the rate-constraint losses' metrics
        cfg.test_evaluator = [cfg.test_evaluator,
                              dict(type='SegregRateMetric',
                                   ignore_index=old.get('ignore_index', 255),
                                   **cfg.rate_metrics)]
    adapt_cfg_for_cpu_distributed(cfg, args.launcher)
    return cfg


def _add_rate_metrics(out: str, metrics) -> None:
    """Put the rate metrics' results into DIR/metrics.json."""
    import json
    if len(metrics) < 2:
        return
    path = osp.join(out, 'metrics.json')
    with open(path) as f:
        data = json.load(f)
    data['rate_metrics'] = metrics[1].last_rates
    with open(path + '.tmp', 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(path + '.tmp', path)


def _progress_hook():
    """A hook that draws mmengine's ProgressBar over the test batches."""
    from mmengine.dist import is_main_process
    from mmengine.hooks import Hook
    from mmengine.utils import ProgressBar

    class TestProgressHook(Hook):
        priority = 'VERY_LOW'

        def before_test(self, runner) -> None:
            self.bar = (ProgressBar(len(runner.test_dataloader))
                        if is_main_process() else None)

        def after_test_iter(self, runner, batch_idx, data_batch=None,
                            outputs=None) -> None:
            if self.bar is not None:
                self.bar.update()
                if self.bar.completed >= self.bar.task_num:
                    self.bar.file.write('\n')
                    self.bar.file.flush()
                    self.bar = None

    return TestProgressHook()


def _fail(exc: BaseException, debug: bool, message=None) -> int:
    """``error: <message>`` on stderr (after the traceback with ``debug``);
    returns the exit status 2."""
    if debug:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    print(f'error: {message if message is not None else exc}',
          file=sys.stderr)
    return 2


def _run_guarded(func, debug: bool = False) -> bool:
    """Run ``func()``; False after printing a bad sample's one-line error.

    The process group is destroyed afterwards (every torchrun rank exits
    cleanly); rank 0 still has the gathered results.
    """
    from segreg.datasets import BadSampleError
    from segreg.utils.dist import teardown_process_group
    done = False
    try:
        func()
        done = True
    except BadSampleError as exc:
        _fail(exc, debug, exc.line)
    finally:
        teardown_process_group(barrier=done)
    return done


def main(argv=None) -> int:
    args = parse_args(argv)
    debug = bool(args.debug) or \
        os.environ.get('SEGREG_DEBUG', '') not in ('', '0')
    try:
        import segreg  # noqa: F401  (registers SegregIoUMetric and models)
    except ImportError as exc:  # the stack (segreg/_stack.py)
        return _fail(exc, debug)
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS

    from segreg.evaluation import format_table
    from segreg.utils.config import check_model_cfg, explain_registry_error
    from segreg.utils.dist import init_cpu_process_group
    from segreg.utils import (CheckpointMismatchError, ConfigError,
                              DataRootError, check_checkpoint_compatible,
                              check_data_roots)
    try:
        cfg = build_cfg(args, argv)
        check_model_cfg(cfg)  # before any data is read
        check_data_roots(cfg, ('test_dataloader', ))
    except (ConfigError, DataRootError, FileNotFoundError, ValueError) as exc:
        return _fail(exc, debug)
    init_cpu_process_group(args.launcher)
    try:
        runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
                  RUNNERS.build(cfg))
    except KeyError as exc:  # e.g. an unknown hook or metric type
        why = explain_registry_error(exc, cfg)
        if why is None:
            raise
        return _fail(exc, debug, why)
    try:
        check_checkpoint_compatible(runner.model, args.checkpoint)
    except (CheckpointMismatchError, FileNotFoundError) as exc:
        return _fail(exc, debug)
    runner.register_hook(_progress_hook())
    main_process = is_main_process()  # before the process group is gone
    if not _run_guarded(runner.test, debug):
        return 2
    if main_process:
        out = runner.test_evaluator.metrics[0].out_dir
        cfg.dump(osp.join(out, 'config.py'))
        metric = runner.test_evaluator.metrics[0]
        _add_rate_metrics(out, runner.test_evaluator.metrics)
        print(format_table(metric.last_metrics))
        print(f'wrote {osp.join(out, "metrics.json")}, confusion.npy, '
              f'per_image.npz ({metric.last_metrics["num_images"]} images)')
    return 0


if __name__ == '__main__':
    status = main()
    try:
        from segreg.utils.dist import exit_process
    except ImportError:  # the stack itself is broken (main reported it)
        sys.exit(status)
    exit_process(status)
