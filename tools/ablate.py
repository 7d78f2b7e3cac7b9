#!/usr/bin/env python
"""The experiment driver: arms x seeds, trained, evaluated and compared.

Three uses:

1. Arms given as configs (NAME=CONFIG): train and evaluate every arm x
   seed, then the comparison report of tools/compare.py:

    C=deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py
    python tools/ablate.py \\
        --arms ce=configs/demo/$C dual=configs/demo/dualreg-iou_$C \\
        --seeds 0 1 2 --jobs 2 --work-root work_dirs/ablation \\
        --out work_dirs/ablation/report

2. Named arms of a dataset preset (--dataset; --list-arms lists them; a
   missing dataset is first generated with tools/make_demo_data.py; runs go
   to work_dirs/regularizer_experiment/DATASET, seeds default to 0 1 2 and
   arms to ce dual_iou lovasz):

    python tools/ablate.py --dataset collage \\
        --arms ce dual_iou lovasz jml jml_mix dice --seeds 0 1 2 --jobs 2
    python tools/ablate.py --dataset aerial --list-arms

   Datasets: collage, the realistic benchmark (12 classes of real
   photographs and object cut-outs from scikit-image, 4 of them under 1% of
   the pixels; 80x80 crops, 2000 iterations; configs/realistic/); demo (12
   classes, scenes with 8 small "thing" classes, 96x96); aerial (10
   classes, Voronoi land cover, thin roads and rivers, tiny objects, 80x80);
   see data/README.md. Named and NAME=CONFIG arms can be mixed.

3. The batch-size sweep (--sweep LABEL=ROOT, repeated): reads finished
   study roots, one per batch size, trains nothing, and writes
   batch_sweep.md / .html / .json / .png into --out: mIoU, aAcc and the
   rare- and frequent-third mIoU per arm and batch (mean +- 95% t interval
   over seeds), the paired difference to the baseline arm at each batch and
   the drop from the largest batch (Welch interval). LABEL is B (images on
   one process) or BxR (B per process on R processes); --arms are folder
   names:

    python tools/ablate.py --dataset collage --batch 2 --arms ce dual_iou
    python tools/ablate.py --out work_dirs/batch_sweep \\
        --sweep 8=work_dirs/regularizer_experiment/collage \\
        --sweep 2=work_dirs/regularizer_experiment/collage_b2x1 \\
        --arms ce dual_iou

Schedule: --iters N sets the training length (the poly decay ends there
too). --batch B / --ranks R train at the global batch G = B x R with the
images seen held equal: iterations, warm-up, validation and checkpoint
intervals scale by 8 / G (8: the configs' batch), the learning rate by
sqrt(G / 8); R > 1 runs each training under torchrun --standalone (gloo on
CPU), a simulated DDP run. The default work root then ends in _bBxR.
--cfg-options come after these, so they win; {seed} in an option becomes
each run's seed. The fine-tuning protocol, each seed from its CE run:
    R=work_dirs/regularizer_experiment/collage
    python tools/ablate.py --dataset collage --iters 500 \\
        --arms ce_ft dual_iou_ft lovasz_ft jml_ft \\
        --cfg-options load_from=$R/ce/seed{seed}/iter_2000.pth

Other examples:
    # what would run / what is already done, without running anything
    python tools/ablate.py --arms ... --seeds 0 1 2 --dry-run
    # commands for a cluster instead of running here
    python tools/ablate.py --arms ... --print-commands slurm \\
        --gpus 4 --partition gpu > ablation.sbatch
    python tools/ablate.py --dataset collage --iters 4000 \\
        --print-commands torchrun --gpus 8 > study.sh

For each arm NAME=CONFIG and seed S it runs, in a fresh process each,
    python tools/train.py CONFIG --work-dir ROOT/NAME/seedS --seed S [...]
    python tools/test.py CONFIG <last checkpoint> --out ROOT/NAME/seedS/eval
recording both commands in ROOT/NAME/seedS/ablate_run.json, and finishes
with the report of tools/compare.py (baseline = the first arm unless
--baseline): mean +- CI over seeds, paired deltas with p-values, image
bootstrap, per-class IoU rarest class first. The evaluation of the first
seed (--preds-seed) also saves the predicted label maps for the report's
qualitative grid, and tools/check_dataset.py counts the baseline's training
pixels per class once (ROOT/train_class_pixels.json) for the frequency bins.

Pairs already done (ROOT/NAME/seedS/eval/metrics.json readable, and the
saved predictions for the --preds-seed) are skipped; a finished training
without metrics is only evaluated; an interrupted training is resumed from
its last checkpoint. --force redoes everything. A failing pair is reported
and the others still run; the exit status is then 1. Each child's output
goes to train.log / test.log in its work dir; the terminal shows condensed
progress (--verbose: everything).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import ablate_presets as presets
from ablate_commands import (CLASS_PIXELS_FILE, Job, class_pixels_cmd,
                             compare_cmd, join_cmd, print_commands,
                             test_cmd, train_cmd)


def record_path(job: Job) -> str:
    """The run record (commands, status, timings) of a job."""
    # imported here, not at the top: --print-commands and --help stay free
    # of the torch / mmseg import that `import segreg` does
    from segreg.evaluation.report import RUN_RECORD_FILE
    return osp.join(job.work_dir, RUN_RECORD_FILE)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring); defaults that depend on
    the use (seeds, arms, work root, report folder) are filled in here."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group('what to run')
    what.add_argument('--arms', nargs='+', metavar='NAME=CONFIG|NAME',
                      help='arms to compare; the first is the baseline '
                      'unless --baseline says otherwise. NAME alone: a '
                      'named arm of --dataset; with --sweep: a folder name '
                      '(default with --dataset: ce dual_iou lovasz)')
    what.add_argument('--dataset', choices=presets.DATASETS,
                      help='the preset whose named arms --arms may use')
    what.add_argument('--list-arms', action='store_true',
                      help='print the named arms of --dataset (default: of '
                      'every dataset) and exit')
    what.add_argument('--seeds', nargs='+', type=int, default=None,
                      help='training seeds (default: 0; 0 1 2 with '
                      '--dataset)')
    what.add_argument('--baseline', help='baseline arm (default: first)')
    what.add_argument('--preds-seed', type=int, default=None,
                      help='seed whose evaluation also saves the predicted '
                      'label maps (tools/test.py --save-preds) for the '
                      'report\'s qualitative grid (default: the first of '
                      '--seeds; -1: none)')
    sched = parser.add_argument_group('schedule')
    sched.add_argument('--iters', type=int, default=None,
                       help='training iterations of every run at the '
                       'configs\' batch (default: the configs\'); the poly '
                       'decay ends there too')
    sched.add_argument('--batch', type=int, default=None,
                       help='images per process (default: the configs\' '
                       '8); the schedule keeps the images seen (above)')
    sched.add_argument('--ranks', type=int, default=1,
                       help='processes per training run (torchrun '
                       '--standalone, gloo on CPU): a simulated DDP run '
                       'with the global batch BATCH x RANKS; evaluation '
                       'stays one process')
    sched.add_argument('--cfg-options', nargs='+', default=[],
                       metavar='KEY=VALUE',
                       help='passed to both tools/train.py and tools/test.py '
                       '(e.g. train_cfg.max_iters=200); {seed} is replaced '
                       'by each run\'s seed')
    sched.add_argument('--allow-new-keys', action='store_true',
                       help='passed to tools/train.py and tools/test.py: '
                       '--cfg-options may add keys the config does not '
                       'have (e.g. a probe option of a loss)')
    where = parser.add_argument_group('where')
    where.add_argument('--work-root', default=None,
                       help='runs go to WORK_ROOT/NAME/seedS (default: '
                       'work_dirs/ablation; work_dirs/regularizer_experiment'
                       '/DATASET with --dataset; + _bBxR with --batch / '
                       '--ranks)')
    where.add_argument('--out', default=None,
                       help='report folder (default: WORK_ROOT/report; '
                       'required with --sweep)')
    run = parser.add_argument_group('running')
    run.add_argument('--jobs', type=int, default=1,
                     help='pairs run in parallel (default 1). With N > 1 '
                     'each child gets OMP_NUM_THREADS = CPUs / N unless '
                     'OMP_NUM_THREADS is set, and progress lines are '
                     'prefixed with the arm and seed')
    run.add_argument('--force', action='store_true',
                     help='redo pairs that are already done')
    run.add_argument('--dry-run', action='store_true',
                     help='print the plan (done / to do) and exit')
    run.add_argument('--verbose', action='store_true',
                     help='show the full output of every child process')
    run.add_argument('--bootstrap', type=int, default=1000,
                     help='image-bootstrap resamples of the report')
    cluster = parser.add_argument_group('cluster')
    cluster.add_argument('--print-commands',
                         choices=['local', 'torchrun', 'slurm'],
                         help='print the commands (a shell script, or an '
                         'sbatch array script) instead of running them')
    cluster.add_argument('--gpus', type=int, default=1,
                         help='GPUs per run for --print-commands torchrun / '
                         'slurm')
    cluster.add_argument('--partition', default=None,
                         help='SLURM partition for --print-commands slurm')
    sweep = parser.add_argument_group('batch-size sweep')
    sweep.add_argument('--sweep', action='append', metavar='LABEL=ROOT',
                       help='a batch label (8, 4, 2, 2x4) and its study '
                       'root; repeat for each batch; trains nothing')
    args = parser.parse_args(argv)
    for flag in ('jobs', 'ranks', 'batch', 'iters'):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f'--{flag} must be >= 1, got {value}')
    if args.list_arms:
        return args
    if args.sweep:
        bad = [f for f in ('dataset', 'dry_run', 'print_commands')
               if getattr(args, f)]
        if bad:
            parser.error('--sweep reads finished runs; it takes no --'
                         + bad[0].replace('_', '-'))
        if not args.arms or args.out is None:
            parser.error('--sweep needs --arms (folder names) and --out')
        return args
    if args.arms is None:
        if args.dataset is None:
            parser.error('--arms is required (or --dataset, --sweep, '
                         '--list-arms)')
        args.arms = list(presets.DEFAULT_ARMS)
    if args.seeds is None:
        args.seeds = list(presets.DEFAULT_SEEDS if args.dataset else [0])
    if args.work_root is None:
        args.work_root = presets.default_work_root(args.dataset, args.batch,
                                                   args.ranks)
    if args.out is None:
        args.out = osp.join(args.work_root, 'report')
    return args


# ---------------------------------------------------------------- planning
def parse_arms(specs: Sequence[str]) -> List[Tuple[str, str]]:
    """``[(name, config), ...]`` of ``NAME=CONFIG`` specs.

    Raises:
        ValueError: For a spec without ``=``, a name that cannot name a
            folder, a name given twice or a config file that does not exist.
    """
    arms, seen = [], set()
    for spec in specs:
        if '=' not in spec:
            raise ValueError(f'--arms {spec!r}: expected NAME=CONFIG')
        name, config = spec.split('=', 1)
        if not re.fullmatch(r'[A-Za-z0-9_.+-]+', name):
            raise ValueError(f'--arms {spec!r}: NAME may only use letters, '
                             f'digits and _ . + - (it names a folder)')
        if name in seen:
            raise ValueError(f'--arms: arm {name!r} given twice')
        if not osp.isfile(config):
            raise ValueError(f'--arms {spec!r}: config file {config!r} does '
                             f'not exist')
        seen.add(name)
        arms.append((name, config))
    return arms


def _read_record(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def job_state(job: Job) -> str:
    """done | test (trained, not evaluated) | resume | train.

    A pair that saves predictions is done only once they are saved too.
    """
    from segreg.evaluation.metrics_file import MetricsFileError, load_metrics
    from segreg.evaluation.predictions import PREDS_INDEX_FILE
    try:
        load_metrics(job.eval_dir)
        if not job.save_preds or osp.isfile(
                osp.join(job.eval_dir, PREDS_INDEX_FILE)):
            return 'done'
    except MetricsFileError:
        pass
    record = _read_record(record_path(job))
    last = osp.join(job.work_dir, 'last_checkpoint')
    if record.get('train_status') == 'done' and osp.isfile(last):
        return 'test'
    if osp.isfile(last):
        return 'resume'
    return 'train'


def plan(arms: Sequence[Tuple[str, str]], seeds: Sequence[int],
         work_root: str, force: bool = False,
         check: bool = True, preds_seed: Optional[int] = None) -> List[Job]:
    """One job per arm x seed; ``check=False`` skips the state look-up.

    ``preds_seed``: the seed whose evaluation saves predictions (None: the
    first of ``seeds``; -1: none).
    """
    if preds_seed is None:
        preds_seed = seeds[0] if seeds else -1
    jobs = []
    for name, config in arms:
        for seed in seeds:
            job = Job(name, config, seed,
                      osp.join(work_root, name, f'seed{seed}'),
                      save_preds=seed == preds_seed)
            job.state = 'train' if force or not check else job_state(job)
            jobs.append(job)
    return jobs


def write_class_pixels(config: str, work_root: str,
                       cfg_options: Sequence[str]) -> Optional[str]:
    """Count the training pixels per class once (for the frequency bins).

    Returns the JSON path, or None (the report then bins by the test set's
    ground truth and says so) when tools/check_dataset.py fails.
    """
    path = osp.join(work_root, CLASS_PIXELS_FILE)
    if osp.isfile(path):
        return path
    os.makedirs(work_root, exist_ok=True)
    cmd = [sys.executable] + class_pixels_cmd(config, work_root,
                                              cfg_options)[1:]
    log = osp.join(work_root, 'check_dataset.log')
    print(f'[ablate] counting training pixels per class (log: {log})',
          flush=True)
    with open(log, 'w') as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc not in (0, 1) or not osp.isfile(path):  # 1: problems found
        print(f'[ablate] tools/check_dataset.py failed (exit {rc}, see '
              f'{log}); frequency bins use the test set', file=sys.stderr)
        return None
    return path


# ---------------------------------------------------------------- running
_ITER = re.compile(r'Iter\((train|val|test)\)\s*\[\s*(\d+)/(\d+)\]')


def condense(line: str) -> Optional[str]:
    """A short progress line from an mmengine log line, or None."""
    m = _ITER.search(line)
    if not m:
        if 'Error' in line or 'error:' in line:
            return line.rstrip()
        return None
    kind, i, n = m.groups()
    fields = dict(re.findall(r'(\w[\w.]*):\s+([-\d.:e]+)', line[m.end():]))
    if kind == 'train':
        parts = [f'iter {i}/{n}']
        parts += [f'{k} {fields[k]}' for k in ('loss', 'eta') if k in fields]
        return '    ' + '  '.join(parts)
    if 'mIoU' in fields:
        return f'    {kind}: mIoU {fields["mIoU"]}'
    return None


def run_logged(cmd: List[str], log_path: str, verbose: bool,
               prefix: str = '', threads: Optional[int] = None) -> int:
    """Run ``cmd``, teeing its output to ``log_path``; show progress.

    ``prefix`` starts every condensed progress line (parallel pairs);
    ``threads`` sets the child's OMP_NUM_THREADS / MKL_NUM_THREADS.
    """
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, 'w') as log:
        log.write('$ ' + join_cmd(cmd) + '\n')
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                env=env, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if verbose:
                sys.stdout.write(line)
            else:
                short = condense(line)
                if short:
                    print(prefix + short, flush=True)
        return proc.wait()


def _tail(path: str, n: int = 25) -> str:
    try:
        with open(path) as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return ''


def _write_record(job: Job, **kw) -> None:
    rec = _read_record(record_path(job))
    rec.update(arm=job.arm, seed=job.seed, config=job.config, **kw)
    os.makedirs(job.work_dir, exist_ok=True)
    with open(record_path(job), 'w') as f:
        json.dump(rec, f, indent=1)


def _child_threads(jobs: int) -> Optional[int]:
    """OMP threads per child when ``jobs`` pairs share the host."""
    if jobs <= 1 or 'OMP_NUM_THREADS' in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // jobs)


def run_job(job: Job, args, index: int, total: int) -> bool:
    head = f'[ablate {index}/{total}] {job.arm} seed {job.seed}'
    jobs = getattr(args, 'jobs', 1)
    prefix = f'[{job.arm} s{job.seed}]' if jobs > 1 else ''
    threads = _child_threads(jobs)
    os.makedirs(job.work_dir, exist_ok=True)
    py = sys.executable
    if job.state in ('train', 'resume'):
        cmd = train_cmd(job, args.cfg_options, job.state == 'resume', py,
                        getattr(args, 'ranks', 1),
                        getattr(args, 'allow_new_keys', False))
        shown = join_cmd(['python'] + cmd[1:])
        _write_record(job, train_command=shown, train_status='running')
        log = osp.join(job.work_dir, 'train.log')
        print(f'{head}: {"resuming" if job.state == "resume" else "training"}'
              f' (log: {log})', flush=True)
        t0 = time.time()
        rc = run_logged(cmd, log, args.verbose, prefix, threads)
        if rc != 0:
            _write_record(job, train_status=f'failed (exit {rc})')
            print(f'{head}: training FAILED (exit {rc}); last lines of '
                  f'{log}:\n{_tail(log)}', file=sys.stderr, flush=True)
            return False
        _write_record(job, train_status='done',
                      train_seconds=round(time.time() - t0, 1))
    last = osp.join(job.work_dir, 'last_checkpoint')
    if not osp.isfile(last):
        print(f'{head}: no {last} after training; cannot evaluate',
              file=sys.stderr)
        return False
    with open(last) as f:
        ckpt = f.read().strip()
    cmd = test_cmd(job, ckpt, args.cfg_options, sys.executable,
                   getattr(args, 'allow_new_keys', False))
    log = osp.join(job.work_dir, 'test.log')
    print(f'{head}: evaluating {osp.basename(ckpt)} (log: {log})',
          flush=True)
    _write_record(job, test_command=join_cmd(['python'] + cmd[1:]),
                  checkpoint=ckpt)
    t0 = time.time()
    rc = run_logged(cmd, log, args.verbose, prefix, threads)
    if rc != 0:
        print(f'{head}: evaluation FAILED (exit {rc}); last lines of '
              f'{log}:\n{_tail(log)}', file=sys.stderr, flush=True)
        return False
    _write_record(job, test_seconds=round(time.time() - t0, 1))
    with open(osp.join(job.eval_dir, 'metrics.json')) as f:
        miou = json.load(f).get('mIoU')
    print(f'{head}: mIoU {miou:.2f}' if miou is not None else
          f'{head}: mIoU n/a', flush=True)
    return True


# ---------------------------------------------------------------- the uses
def run_sweep(args) -> int:
    """``--sweep``: the batch-size sweep's tables over finished roots."""
    from segreg.evaluation.report.sweep import parse_batch_label, write_sweep
    sweeps = []
    for spec in args.sweep:
        label, sep, root = spec.partition('=')
        if not sep or not osp.isdir(root):
            print(f'ablate: --sweep {spec!r}: expected LABEL=ROOT with an '
                  'existing study root (tools/ablate.py --dataset D '
                  '--batch B --ranks R writes one)', file=sys.stderr)
            return 2
        try:
            parse_batch_label(label)
        except ValueError:
            print(f'ablate: --sweep {spec!r}: the label must be B or BxR '
                  '(integers)', file=sys.stderr)
            return 2
        sweeps.append((label, root))
    arms = [a.split('=', 1)[0] for a in args.arms]
    written = write_sweep(sweeps, arms, args.baseline or arms[0], args.out)
    print('wrote ' + ', '.join(written))
    return 0


def main(argv=None) -> int:
    """The three uses (module docstring); returns the exit status: 0 done,
    1 a run or the report failed, 2 bad arguments."""
    args = parse_args(argv)
    if args.list_arms:
        sys.stdout.write(presets.list_arms(
            [args.dataset] if args.dataset else presets.DATASETS))
        return 0
    if args.sweep:
        return run_sweep(args)
    try:
        arms = parse_arms(presets.arm_specs(args.dataset, args.arms))
        # the study's schedule first: the user's --cfg-options win
        args.cfg_options = presets.study_options(
            arms[0][1], args.iters, args.batch, args.ranks) + \
            list(args.cfg_options)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    names = [n for n, _ in arms]
    baseline = args.baseline or names[0]
    if baseline not in names:
        print(f'error: --baseline {baseline!r} is not one of {names}',
              file=sys.stderr)
        return 2
    if len(set(args.seeds)) != len(args.seeds):
        print(f'error: --seeds repeats a seed: {args.seeds}', file=sys.stderr)
        return 2
    if args.print_commands:
        # no segreg import here: mmseg prints to stdout when imported
        jobs = plan(arms, args.seeds, args.work_root, check=False,
                    preds_seed=args.preds_seed)
        sys.stdout.write(print_commands(args.print_commands, jobs, args,
                                        arms, baseline))
        return 0
    if args.dataset and not args.dry_run:
        presets.ensure_data(args.dataset, args.cfg_options)
    return run_study(args, arms, baseline)


def run_study(args, arms: Sequence[Tuple[str, str]], baseline: str) -> int:
    """Plan, run what is not done (or only show it: --dry-run), report."""
    jobs = plan(arms, args.seeds, args.work_root, args.force,
                preds_seed=args.preds_seed)
    todo = [j for j in jobs if j.state != 'done']
    print(f'[ablate] {len(jobs)} runs ({len(arms)} arms x {len(args.seeds)} '
          f'seeds) in {args.work_root}: {len(jobs) - len(todo)} done, '
          f'{len(todo)} to run')
    for j in jobs:
        action = {'done': 'skip (metrics.json present)',
                  'test': 'evaluate (trained)',
                  'resume': 'resume training, then evaluate',
                  'train': 'train, then evaluate'}[j.state]
        print(f'  {j.arm:<16} seed {j.seed:<4} {action}')
    report_cmd = join_cmd(compare_cmd(arms, args.work_root, args.out,
                                      baseline, args.bootstrap))
    if args.dry_run:
        print('report: ' + report_cmd)
        return 0
    t0 = time.time()
    # threads, not processes: each pair is two child processes already
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        ok = list(pool.map(lambda kj: run_job(kj[1], args, kj[0], len(todo)),
                           enumerate(todo, 1)))
    failed = [j for j, good in zip(todo, ok) if not good]
    if todo:
        print(f'[ablate] runs finished in {time.time() - t0:.0f} s')
    from segreg.evaluation.report import ReportError, build_report
    specs = [(j.arm, j.work_dir) for j in jobs]
    pixels = write_class_pixels(dict(arms)[baseline], args.work_root,
                                args.cfg_options)
    print('[ablate] report: ' + report_cmd)
    try:
        res = build_report(specs, args.out, baseline=baseline,
                           bootstrap=args.bootstrap,
                           train_class_pixels=pixels)
    except ReportError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    for note in res.left_out:
        print(f'left out: {note}', file=sys.stderr)
    print(res.summary_table())
    print(f'report: {osp.join(args.out, "report.md")} and report.html')
    if failed:
        print('[ablate] FAILED: ' + ', '.join(f'{j.arm} seed {j.seed}'
                                              for j in failed) +
              ' (see their train.log / test.log)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
