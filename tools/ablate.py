#!/usr/bin/env python
"""Ablation runner: train and evaluate every arm x seed, then the report.

Examples:
    # the demo: baseline vs regularized, three seeds each (CPU, sequential)
    python tools/ablate.py \\
        --arms baseline=configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py \\
               dualiou=configs/demo/<regularized demo config>.py \\
        --seeds 0 1 2 --work-root work_dirs/ablation \\
        --out work_dirs/ablation/report

    # two pairs at a time on a CPU machine (each child: OMP threads = CPUs/2)
    python tools/ablate.py --arms ... --seeds 0 1 2 --jobs 2

    # what would run / what is already done, without running anything
    python tools/ablate.py --arms ... --seeds 0 1 2 --dry-run

    # commands for a cluster instead of running here
    python tools/ablate.py --arms ... --seeds 0 1 2 --print-commands slurm \\
        --gpus 4 --partition gpu > ablation.sbatch
    python tools/ablate.py --arms ... --seeds 0 1 2 --print-commands torchrun \\
        --gpus 8 > ablation.sh

For each arm NAME=CONFIG and seed S it runs, in a fresh process each,
    python tools/train.py CONFIG --work-dir ROOT/NAME/seedS --seed S [--cfg-options ...]
    python tools/test.py CONFIG <last checkpoint> --out ROOT/NAME/seedS/eval [--cfg-options ...]
recording both commands in ROOT/NAME/seedS/ablate_run.json, and finishes with
the report of tools/compare.py (baseline = the first arm unless --baseline).
The evaluation of the first seed (--preds-seed) also saves the predicted
label maps (tools/test.py --save-preds) for the report's qualitative grid,
and tools/check_dataset.py counts the baseline's training pixels per class
once (ROOT/train_class_pixels.json) for the report's frequency bins.

Pairs already done (ROOT/NAME/seedS/eval/metrics.json present and readable,
and the saved predictions for the --preds-seed) are skipped; a finished training without metrics is only evaluated; an
interrupted training is resumed from its last checkpoint. --force redoes
everything. A failing pair is reported and the others still run; the exit
status is then 1. Each child's full output goes to train.log / test.log in
its work dir; the terminal shows condensed progress (--verbose: everything).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Training pixels per class of the baseline's training split (the report's
#: frequency bins), written once by tools/check_dataset.py into WORK_ROOT.
CLASS_PIXELS_FILE = 'train_class_pixels.json'


def _record_file() -> str:
    # imported here, not at the top: --print-commands and --help stay free
    # of the torch / mmseg import that `import segreg` does
    from segreg.evaluation.report import RUN_RECORD_FILE
    return RUN_RECORD_FILE


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arms', nargs='+', required=True,
                        metavar='NAME=CONFIG',
                        help='arms to compare; the first is the baseline '
                        'unless --baseline says otherwise')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='training seeds (default: 0)')
    parser.add_argument('--preds-seed', type=int, default=None,
                        help='seed whose evaluation also saves the predicted '
                        'label maps (tools/test.py --save-preds) for the '
                        'report\'s qualitative grid (default: the first of '
                        '--seeds; -1: none)')
    parser.add_argument('--work-root', default='work_dirs/ablation',
                        help='runs go to WORK_ROOT/NAME/seedS')
    parser.add_argument('--out', default=None,
                        help='report folder (default: WORK_ROOT/report)')
    parser.add_argument('--baseline', help='baseline arm (default: first)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to both tools/train.py and tools/test.py '
                        '(e.g. train_cfg.max_iters=200); {seed} is replaced '
                        'by each run\'s seed (load_from=ROOT/ce/seed{seed}/'
                        'iter_2000.pth fine-tunes each seed from its CE run)')
    parser.add_argument('--allow-new-keys', action='store_true',
                        help='passed to tools/train.py and tools/test.py: '
                        '--cfg-options may add keys the config does not '
                        'have (e.g. a probe option of a loss)')
    parser.add_argument('--force', action='store_true',
                        help='redo pairs that are already done')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the plan (done / to do) and exit')
    parser.add_argument('--print-commands', choices=['local', 'torchrun',
                                                     'slurm'],
                        help='print the commands (a shell script, or an '
                        'sbatch array script) instead of running them')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per run for --print-commands torchrun / '
                        'slurm')
    parser.add_argument('--ranks', type=int, default=1,
                        help='processes per training run on this machine '
                        '(torchrun --standalone, gloo on CPU): a simulated '
                        'DDP run; evaluation stays one process')
    parser.add_argument('--partition', default=None,
                        help='SLURM partition for --print-commands slurm')
    parser.add_argument('--bootstrap', type=int, default=1000,
                        help='image-bootstrap resamples of the report')
    parser.add_argument('--jobs', type=int, default=1,
                        help='pairs run in parallel (default 1). With N > 1 '
                        'each child gets OMP_NUM_THREADS = CPUs / N unless '
                        'OMP_NUM_THREADS is set, and progress lines are '
                        'prefixed with the arm and seed')
    parser.add_argument('--verbose', action='store_true',
                        help='show the full output of every child process')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.ranks < 1:
        parser.error(f'--ranks must be >= 1, got {args.ranks}')
    if args.out is None:
        args.out = osp.join(args.work_root, 'report')
    return args


# ---------------------------------------------------------------- planning
@dataclass
class Job:
    arm: str
    config: str
    seed: int
    work_dir: str
    state: str = 'train'  # done | test | resume | train
    save_preds: bool = False

    @property
    def eval_dir(self) -> str:
        return osp.join(self.work_dir, 'eval')

    @property
    def record_path(self) -> str:
        return osp.join(self.work_dir, _record_file())


def parse_arms(specs: Sequence[str]) -> List[Tuple[str, str]]:
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
    record = _read_record(job.record_path)
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


def _script(name: str) -> str:
    path = osp.join(ROOT, 'tools', name)
    rel = osp.relpath(path)
    return rel if not rel.startswith('..') else path


def seed_options(cfg_options: Sequence[str], seed) -> List[str]:
    """``--cfg-options`` with ``{seed}`` replaced by the run's seed (e.g.
    ``load_from=.../ce/seed{seed}/iter_2000.pth``: fine-tune each seed from
    the CE run of the same seed)."""
    return [o.replace('{seed}', str(seed)) for o in cfg_options]


def _options(cfg_options: Sequence[str], seed, allow_new_keys: bool
             ) -> List[str]:
    """The ``--cfg-options`` (and ``--allow-new-keys``) arguments of a
    run's tools/train.py or tools/test.py."""
    opts = seed_options(cfg_options, seed)
    return (['--cfg-options', *opts] if opts else []) + \
        (['--allow-new-keys'] if allow_new_keys and opts else [])


def train_cmd(job: Job, cfg_options: Sequence[str], resume: bool,
              python: str = 'python', ranks: int = 1,
              allow_new_keys: bool = False) -> List[str]:
    """tools/train.py for one run; ``ranks > 1``: under ``torchrun
    --standalone`` (a free port per run, so parallel jobs do not collide)
    with ``--launcher pytorch``."""
    launch = [python, '-m', 'torch.distributed.run', '--standalone',
              f'--nproc_per_node={ranks}'] if ranks > 1 else [python]
    cmd = launch + [_script('train.py'), job.config, '--work-dir',
                    job.work_dir, '--seed', str(job.seed)]
    if ranks > 1:
        cmd += ['--launcher', 'pytorch']
    if resume:
        cmd.append('--resume')
    return cmd + _options(cfg_options, job.seed, allow_new_keys)


def test_cmd(job: Job, checkpoint: str, cfg_options: Sequence[str],
             python: str = 'python', allow_new_keys: bool = False
             ) -> List[str]:
    cmd = [python, _script('test.py'), job.config, checkpoint, '--out',
           job.eval_dir]
    if job.save_preds:
        cmd.append('--save-preds')
    return cmd + _options(cfg_options, job.seed, allow_new_keys)


def compare_cmd(arms, work_root: str, out: str, baseline: str,
                bootstrap: int) -> List[str]:
    cmd = ['python', _script('compare.py')]
    for name, _ in arms:
        cmd += ['--run', f'{name}={osp.join(work_root, name, "seed*")}']
    return cmd + ['--baseline', baseline, '--out', out, '--bootstrap',
                  str(bootstrap), '--train-class-pixels',
                  osp.join(work_root, CLASS_PIXELS_FILE)]


def class_pixels_cmd(config: str, work_root: str,
                     cfg_options: Sequence[str]) -> List[str]:
    """tools/check_dataset.py on the training split, JSON into work_root
    (the counts do not depend on the seed: ``{seed}`` becomes 0)."""
    cfg_options = seed_options(cfg_options, 0)
    cmd = ['python', _script('check_dataset.py'), config, '--split', 'train',
           '--fast', '--json', osp.join(work_root, CLASS_PIXELS_FILE)]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    return cmd


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


def _join(cmd: Sequence[str]) -> str:
    return ' '.join(shlex.quote(c) for c in cmd)


# ---------------------------------------------------------------- printing
def print_commands(mode: str, jobs: List[Job], args, arms,
                   baseline: str) -> str:
    opts = args.cfg_options
    new = getattr(args, 'allow_new_keys', False)
    q = shlex.quote
    generated = _join(['python', 'tools/ablate.py'] + list(sys.argv[1:]))
    report = _join(compare_cmd(arms, args.work_root, args.out, baseline,
                               args.bootstrap))
    base_cfg = dict(arms)[baseline]
    pixels = _join(class_pixels_cmd(base_cfg, args.work_root, opts))
    # check_dataset exits 1 when it finds problems; the counts are written
    pixels = (f'[ -f {q(osp.join(args.work_root, CLASS_PIXELS_FILE))} ] || '
              f'{pixels} || true')
    lines = ['#!/usr/bin/env bash',
             f'# generated by: {generated}',
             'set -euo pipefail']
    if mode in ('local', 'torchrun'):
        for job in jobs:
            done = (f'{job.eval_dir}/preds_index.json' if job.save_preds
                    else f'{job.eval_dir}/metrics.json')
            ckpt = f'"$(cat {q(job.work_dir)}/last_checkpoint)"'
            if mode == 'local':
                tr = _join(train_cmd(job, opts, resume=False,
                                     ranks=args.ranks, allow_new_keys=new))
                te = _join(test_cmd(job, 'CKPT', opts, allow_new_keys=new)
                           ).replace('CKPT', ckpt)
            else:
                tr = _join(['bash', _script('dist_train.sh'), job.config,
                            str(args.gpus), '--work-dir', job.work_dir,
                            '--seed', str(job.seed)] +
                           _options(opts, job.seed, new))
                te = _join(['python', '-m', 'torch.distributed.run',
                            f'--nproc_per_node={args.gpus}'] +
                           test_cmd(job, 'CKPT', opts,
                                    allow_new_keys=new)[1:] +
                           ['--launcher', 'pytorch']).replace('CKPT', ckpt)
            lines += [f'# {job.arm}, seed {job.seed}',
                      f'if [ ! -f {q(done)} ]; then',
                      f'  {tr}', f'  {te}', 'fi']
        lines += ['# training pixels per class (the report\'s frequency '
                  'bins)', pixels, '# report', report]
        return '\n'.join(lines) + '\n'
    # slurm: one array task per arm x seed
    n = len(jobs)
    g = args.gpus
    lines = ['#!/usr/bin/env bash',
             f'# generated by: {generated}',
             f'# submit:  mkdir -p {q(args.work_root)} && '
             'jid=$(sbatch --parsable THIS_FILE)',
             '# report:  sbatch --dependency=afterany:$jid --wrap ' +
             q(pixels + '; ' + report),
             '#SBATCH --job-name=segreg-ablate',
             f'#SBATCH --array=0-{n - 1}',
             '#SBATCH --nodes=1',
             f'#SBATCH --ntasks-per-node={g}',
             f'#SBATCH --gres=gpu:{g}',
             '#SBATCH --cpus-per-task=5',
             f'#SBATCH --output={args.work_root}/slurm-%A_%a.out']
    if args.partition:
        lines.append(f'#SBATCH --partition={args.partition}')
    lines += ['set -euo pipefail',
              'ARMS=(' + ' '.join(q(j.arm) for j in jobs) + ')',
              'CONFIGS=(' + ' '.join(q(j.config) for j in jobs) + ')',
              'SEEDS=(' + ' '.join(str(j.seed) for j in jobs) + ')',
              'PREDS=(' + ' '.join(str(int(j.save_preds)) for j in jobs) +
              ')',
              'i=$SLURM_ARRAY_TASK_ID',
              f'W={q(args.work_root)}/${{ARMS[$i]}}/seed${{SEEDS[$i]}}',
              'DONE="$W/eval/metrics.json"; SAVEPREDS=""',
              'if [ "${PREDS[$i]}" = 1 ]; then '
              'DONE="$W/eval/preds_index.json"; SAVEPREDS="--save-preds"; fi',
              '[ -f "$DONE" ] && { echo "done: $W"; exit 0; }',
              'RESUME=""; [ -f "$W/last_checkpoint" ] && RESUME="--resume"',
              'CFGOPT=(' + (' '.join(['--cfg-options'] + [q(o) for o in opts]
                                     + (['--allow-new-keys'] if new else []))
                            if opts else '') + ')',
              # {seed} in a cfg option: this task's seed
              'CFGOPT=(${CFGOPT[@]+"${CFGOPT[@]//"{seed}"/${SEEDS[$i]}}"})',
              f'srun python -u {_script("train.py")} "${{CONFIGS[$i]}}" '
              '--work-dir "$W" --seed "${SEEDS[$i]}" $RESUME '
              '--launcher slurm ${CFGOPT[@]+"${CFGOPT[@]}"}',
              f'srun python -u {_script("test.py")} "${{CONFIGS[$i]}}" '
              '"$(cat "$W/last_checkpoint")" --out "$W/eval" $SAVEPREDS '
              '--launcher slurm ${CFGOPT[@]+"${CFGOPT[@]}"}']
    return '\n'.join(lines) + '\n'


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
        log.write('$ ' + _join(cmd) + '\n')
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
    rec = _read_record(job.record_path)
    rec.update(arm=job.arm, seed=job.seed, config=job.config, **kw)
    os.makedirs(job.work_dir, exist_ok=True)
    with open(job.record_path, 'w') as f:
        json.dump(rec, f, indent=1)


def _child_threads(jobs: int) -> Optional[int]:
    """OMP threads per child when ``jobs`` pairs share this machine."""
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
        shown = _join(['python'] + cmd[1:])
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
    _write_record(job, test_command=_join(['python'] + cmd[1:]),
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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        arms = parse_arms(args.arms)
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
    if args.dry_run:
        print('report: ' + _join(compare_cmd(arms, args.work_root, args.out,
                                             baseline, args.bootstrap)))
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
    print('[ablate] report: ' + _join(compare_cmd(
        arms, args.work_root, args.out, baseline, args.bootstrap)))
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
