"""The command lines of tools/ablate.py (a helper module, not a script).

One :class:`Job` per arm x seed, and what it runs: tools/train.py and
tools/test.py for a run, tools/check_dataset.py for the training pixels
per class, tools/compare.py for the report; :func:`print_commands` writes
them all as a shell script (``local``, ``torchrun``) or as a SLURM array
script. Nothing here imports torch or segreg, so the printed scripts stay
clean (mmseg prints to stdout when imported).
"""
from __future__ import annotations

import os.path as osp
import shlex
import sys
from dataclasses import dataclass
from typing import List, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Training pixels per class of the baseline's training split (the report's
#: frequency bins), written once by tools/check_dataset.py into WORK_ROOT;
#: the same name as segreg.evaluation.report.CLASS_PIXELS_FILE (not
#: imported from there: see above).
CLASS_PIXELS_FILE = 'train_class_pixels.json'


@dataclass
class Job:
    """One arm x seed run and where it writes.

    Attributes:
        arm: The arm's name (a folder name).
        config: The arm's config file.
        seed: The training seed.
        work_dir: ``WORK_ROOT/ARM/seedS``.
        state: ``'done'``, ``'test'`` (trained, not evaluated), ``'resume'``
            or ``'train'``.
        save_preds: Whether the evaluation also saves the predicted label
            maps (``tools/test.py --save-preds``).
    """

    arm: str
    config: str
    seed: int
    work_dir: str
    state: str = 'train'  # done | test | resume | train
    save_preds: bool = False

    @property
    def eval_dir(self) -> str:
        """The metrics folder of tools/test.py: ``WORK_DIR/eval``."""
        return osp.join(self.work_dir, 'eval')


def script_path(name: str) -> str:
    """``tools/NAME``, relative to the working directory when below it."""
    path = osp.join(ROOT, 'tools', name)
    rel = osp.relpath(path)
    return rel if not rel.startswith('..') else path


def seed_options(cfg_options: Sequence[str], seed) -> List[str]:
    """``--cfg-options`` with ``{seed}`` replaced by the run's seed (e.g.
    ``load_from=.../ce/seed{seed}/iter_2000.pth``: fine-tune each seed from
    the CE run of the same seed)."""
    return [o.replace('{seed}', str(seed)) for o in cfg_options]


def cfg_args(cfg_options: Sequence[str], seed, allow_new_keys: bool
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
    cmd = launch + [script_path('train.py'), job.config, '--work-dir',
                    job.work_dir, '--seed', str(job.seed)]
    if ranks > 1:
        cmd += ['--launcher', 'pytorch']
    if resume:
        cmd.append('--resume')
    return cmd + cfg_args(cfg_options, job.seed, allow_new_keys)


def test_cmd(job: Job, checkpoint: str, cfg_options: Sequence[str],
             python: str = 'python', allow_new_keys: bool = False
             ) -> List[str]:
    """tools/test.py for one run (``--save-preds`` for the preds seed)."""
    cmd = [python, script_path('test.py'), job.config, checkpoint, '--out',
           job.eval_dir]
    if job.save_preds:
        cmd.append('--save-preds')
    return cmd + cfg_args(cfg_options, job.seed, allow_new_keys)


def compare_cmd(arms, work_root: str, out: str, baseline: str,
                bootstrap: int) -> List[str]:
    """tools/compare.py over every arm's ``seed*`` folders."""
    cmd = ['python', script_path('compare.py')]
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
    cmd = ['python', script_path('check_dataset.py'), config, '--split',
           'train', '--fast', '--json', osp.join(work_root, CLASS_PIXELS_FILE)]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    return cmd


def join_cmd(cmd: Sequence[str]) -> str:
    """The command as one shell-quoted line."""
    return ' '.join(shlex.quote(c) for c in cmd)


def print_commands(mode: str, jobs: List[Job], args, arms,
                   baseline: str) -> str:
    """Every run, the pixel count and the report as one script.

    Args:
        mode: ``'local'`` (tools/train.py here, under torchrun with
            ``args.ranks > 1``), ``'torchrun'`` (tools/dist_train.sh on
            ``args.gpus`` GPUs) or ``'slurm'`` (an sbatch array script, one
            task per arm x seed; the report as a dependent job).
        jobs: The runs (:func:`ablate.plan`).
        args: The parsed arguments of tools/ablate.py.
        arms: ``[(name, config), ...]``.
        baseline: The report's baseline arm.

    Returns:
        The script; a run whose metrics (or, for the preds seed, saved
        predictions) exist is skipped when it runs.
    """
    opts = args.cfg_options
    new = getattr(args, 'allow_new_keys', False)
    q = shlex.quote
    generated = join_cmd(['python', 'tools/ablate.py'] + list(sys.argv[1:]))
    report = join_cmd(compare_cmd(arms, args.work_root, args.out,
                                  baseline, args.bootstrap))
    base_cfg = dict(arms)[baseline]
    pixels = join_cmd(class_pixels_cmd(base_cfg, args.work_root, opts))
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
                tr = join_cmd(train_cmd(job, opts, resume=False,
                                        ranks=args.ranks,
                                        allow_new_keys=new))
                te = join_cmd(test_cmd(job, 'CKPT', opts,
                                       allow_new_keys=new)
                              ).replace('CKPT', ckpt)
            else:
                tr = join_cmd(['bash', script_path('dist_train.sh'),
                               job.config, str(args.gpus), '--work-dir',
                               job.work_dir, '--seed', str(job.seed)] +
                              cfg_args(opts, job.seed, new))
                te = join_cmd(['python', '-m', 'torch.distributed.run',
                               f'--nproc_per_node={args.gpus}'] +
                              test_cmd(job, 'CKPT', opts,
                                       allow_new_keys=new)[1:] +
                              ['--launcher', 'pytorch']).replace('CKPT',
                                                                 ckpt)
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
             # pre-emption: SIGUSR1 5 minutes before the limit, a checkpoint
             # (tools/train.py exits 75), then the task requeues itself and
             # resumes (docs/reliability.md)
             '#SBATCH --requeue',
             '#SBATCH --signal=B:USR1@300',
             '#SBATCH --open-mode=append',
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
              f'srun python -u {script_path("train.py")} "${{CONFIGS[$i]}}" '
              '--work-dir "$W" --seed "${SEEDS[$i]}" $RESUME '
              '--launcher slurm ${CFGOPT[@]+"${CFGOPT[@]}"} &',
              # the batch shell gets SLURM's signal: pass it to the tasks,
              # wait for their checkpoint, requeue on status 75
              'STEP=$!; FORWARDED=""',
              'forward() { kill -"$1" "$STEP" 2>/dev/null || true; '
              'FORWARDED=1; }',
              "trap 'forward USR1' USR1; trap 'forward TERM' TERM",
              'rc=0; wait "$STEP" || rc=$?',
              'while [ -n "$FORWARDED" ] && [ "$rc" -gt 128 ]; do '
              'FORWARDED=""; again=0; wait "$STEP" || again=$?; '
              '[ "$again" = 127 ] && break; rc=$again; done',
              'trap - USR1 TERM',
              'if [ "$rc" = 75 ]; then',
              '  scontrol requeue '
              '"${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_$i" && exit 0',
              '  echo "pre-empted; requeue refused: resubmit this array task'
              ' (it resumes)" >&2; exit 75',
              'fi',
              '[ "$rc" = 0 ] || exit "$rc"',
              f'srun python -u {script_path("test.py")} "${{CONFIGS[$i]}}" '
              '"$(cat "$W/last_checkpoint")" --out "$W/eval" $SAVEPREDS '
              '--launcher slurm ${CFGOPT[@]+"${CFGOPT[@]}"}']
    return '\n'.join(lines) + '\n'
