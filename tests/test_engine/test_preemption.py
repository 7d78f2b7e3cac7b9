"""SIGTERM / SIGUSR1 in the middle of training: a checkpoint at the
iteration reached, exit status 75, and ``--resume`` ends bit-identical to
the run that was never interrupted (one process, and two torchrun
processes on CPU with gloo).

The signals are sent from inside the run (tests/test_engine/
preempt_helpers.py) at a fixed iteration, and the sender waits until the
signal has arrived, so the iteration at which training stops is the same
in every run: no timing, no flakiness.
"""
from __future__ import annotations

import os
import os.path as osp
import signal
import subprocess
import sys

import pytest

from conftest import DEMO_CONFIG, REPO_ROOT
from preempt_helpers import (assert_same_run, checkpoint_iter, fake_log,
                             fake_slurm)

HELPERS = osp.dirname(osp.abspath(__file__))
MAX_ITERS = 12
PREEMPTED = 75


def options(demo_cfg_options, workers: int = 2) -> list:
    # checkpoints every 4 iterations, validation every 3: a stop at
    # iteration 6 needs a checkpoint of its own
    return demo_cfg_options(MAX_ITERS, 4) + [
        'train_cfg.val_interval=3',
        'default_hooks.logger.interval=3',
        f'train_dataloader.num_workers={workers}',
        f'val_dataloader.num_workers={workers}',
        'custom_imports.imports=[segreg,preempt_helpers]',
    ]


def env(signal_spec: str = '') -> dict:
    out = {k: v for k, v in os.environ.items()
           if k not in ('SEGREG_TEST_SIGNAL', 'PORT', 'WORLD_SIZE')}
    out.update(OMP_NUM_THREADS='1', PYTHONPATH=f'{REPO_ROOT}:{HELPERS}',
               PYTHON=sys.executable)
    if signal_spec:
        out['SEGREG_TEST_SIGNAL'] = signal_spec
    return out


def train(work: str, opts: list, signal_spec: str = '',
          resume: bool = False) -> subprocess.CompletedProcess:
    """tools/train.py in its own session (a signal to the process group
    reaches it and its DataLoader workers, nothing else)."""
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
           DEMO_CONFIG, '--work-dir', work, '--cfg-options', *opts]
    return subprocess.run(cmd + (['--resume'] if resume else []),
                          cwd=REPO_ROOT, env=env(signal_spec),
                          capture_output=True, text=True, timeout=600,
                          start_new_session=True)


# The demo model has plain BN (SyncBN needs a GPU): without broadcast
# buffers each rank keeps running statistics of its own, which rank 0's
# checkpoint does not hold, and rank 1's share of the validation would
# differ after a resume (the weights would not; docs/reliability.md).
DDP_BROADCAST_BUFFERS = [
    'model_wrapper_cfg.type=MMDistributedDataParallel',
    'model_wrapper_cfg.device_ids=None',
    'model_wrapper_cfg.broadcast_buffers=True',
]


def dist_train(work: str, opts: list, signal_spec: str = '',
               resume: bool = False) -> subprocess.CompletedProcess:
    """tools/dist_train.sh CONFIG 2 (torchrun, CPU, gloo)."""
    cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
           DEMO_CONFIG, '2', '--work-dir', work, '--allow-new-keys',
           '--cfg-options', *opts, *DDP_BROADCAST_BUFFERS]
    return subprocess.run(cmd + (['--resume'] if resume else []),
                          cwd=REPO_ROOT, env=env(signal_spec),
                          capture_output=True, text=True, timeout=600,
                          start_new_session=True)


def _ok(proc, status=0) -> None:
    log = proc.stdout + proc.stderr
    assert proc.returncode == status, log[-4000:]
    assert 'Traceback' not in log and 'terminate called' not in log, \
        log[-4000:]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, demo_cfg_options) -> str:
    """One process, 12 iterations, never interrupted: the work dir."""
    work = str(tmp_path_factory.mktemp('full'))
    _ok(train(work, options(demo_cfg_options)))
    return work


@pytest.mark.slow
def test_sigterm_in_validation_to_all_processes_then_resume_is_exact(
        uninterrupted, tmp_path, demo_cfg_options):
    """SIGTERM to the whole process group (as SLURM signals a job step:
    DataLoader workers included) during the validation after iteration 6,
    and a second SIGTERM while the checkpoint is being written: a
    checkpoint of iteration 6 (not a checkpoint interval), status 75, and
    the resumed run equals the uninterrupted one."""
    work = str(tmp_path / 'cut')
    opts = options(demo_cfg_options)
    proc = train(work, opts, 'at=val:6,signal=SIGTERM,to=group,'
                 'again=SIGTERM')
    _ok(proc, PREEMPTED)
    assert 'SIGTERM: training stopped after iteration 6 of 12' in \
        proc.stdout + proc.stderr
    assert checkpoint_iter(work) == 6
    assert not osp.exists(osp.join(work, 'iter_8.pth'))
    assert not [f for f in os.listdir(work) if '.tmp' in f]
    _ok(train(work, opts, resume=True))
    assert_same_run(uninterrupted, work, MAX_ITERS)


@pytest.mark.slow
def test_sigterm_to_one_rank_of_two_stops_both_then_resume_is_exact(
        tmp_path, demo_cfg_options):
    """torchrun with 2 CPU processes: SIGTERM reaches rank 1 only, during
    iteration 5. Both ranks stop after iteration 5 (an all-reduced flag),
    one checkpoint is written, the ranks exit cleanly and dist_train.sh
    exits 75; the resumed run equals the uninterrupted one."""
    opts = options(demo_cfg_options, workers=0)
    full, cut = str(tmp_path / 'full'), str(tmp_path / 'cut')
    _ok(dist_train(full, opts))
    proc = dist_train(cut, opts, 'at=train:5,signal=SIGTERM,to=self,rank=1')
    _ok(proc, PREEMPTED)
    log = proc.stdout + proc.stderr
    assert 'SIGTERM: training stopped after iteration 5 of 12' in log
    assert checkpoint_iter(cut) == 5
    assert sorted(f for f in os.listdir(cut) if f.endswith('.pth')) == [
        'iter_4.pth', 'iter_5.pth']
    _ok(dist_train(cut, opts, resume=True))
    assert_same_run(full, cut, MAX_ITERS)


@pytest.mark.slow
def test_slurm_train_sh_passes_usr1_on_requeues_and_the_job_resumes_exactly(
        uninterrupted, tmp_path, demo_cfg_options):
    """tools/slurm_train.sh inside a job, against fake srun / scontrol: the
    SIGUSR1 that ``--signal=B:USR1@SECS`` sends to the batch script during
    iteration 5 is passed to the task, which checkpoints and exits 75; the
    script runs ``scontrol requeue $SLURM_JOB_ID``. The requeued run
    (SLURM_RESTART_COUNT=1) trains with --resume and ends identical to the
    uninterrupted run."""
    work = str(tmp_path / 'cut')
    slurm = str(tmp_path / 'slurm')
    cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'slurm_train.sh'), 'gpu',
           'job', DEMO_CONFIG, '--work-dir', work, '--cfg-options',
           *options(demo_cfg_options)]
    base = dict(env(), **fake_slurm(slurm), SLURM_JOB_ID='4242',
                PYTHONPATH=HELPERS)

    def run(**extra):
        return subprocess.run(cmd, cwd=REPO_ROOT, env=dict(base, **extra),
                              capture_output=True, text=True, timeout=600,
                              start_new_session=True)

    proc = run(SEGREG_TEST_SIGNAL='at=train:5,signal=SIGUSR1,to=parent')
    _ok(proc, PREEMPTED)
    assert 'SIGUSR1: training stopped after iteration 5 of 12' in \
        proc.stdout + proc.stderr
    assert 'job 4242 requeued' in proc.stderr
    assert fake_log(slurm, 'scontrol') == ['requeue 4242']
    assert checkpoint_iter(work) == 5
    first = fake_log(slurm, 'srun')[0].split()
    assert '--kill-on-bad-exit=1' in first and '--resume' not in first

    proc = run(SLURM_RESTART_COUNT='1')
    _ok(proc, 0)
    second = fake_log(slurm, 'srun')[1].split()
    assert second.count('--resume') == 1 and second[-1] == '--resume'
    assert fake_log(slurm, 'scontrol') == ['requeue 4242']  # not again
    assert_same_run(uninterrupted, work, MAX_ITERS)


def test_signal_in_the_last_iteration_lets_the_run_finish(tmp_path,
                                                          demo_cfg_options):
    """A signal during the last iteration: finishing costs less than a
    requeue, so the run ends normally (status 0, final validation)."""
    work = str(tmp_path / 'w')
    opts = demo_cfg_options(2, 2) + [
        'custom_imports.imports=[segreg,preempt_helpers]']
    proc = train(work, opts, 'at=train:2,signal=SIGTERM,to=self')
    _ok(proc, 0)
    assert checkpoint_iter(work) == 2
    assert 'mIoU' in proc.stdout + proc.stderr


def test_handlers_are_restored_after_training(tools_on_path, tmp_path,
                                              demo_cfg_options):
    """In-process training leaves the process's signal handlers as they
    were (a library must not keep SIGTERM)."""
    import train as train_tool
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM,
                                               signal.SIGUSR1)}
    assert train_tool.main([DEMO_CONFIG, '--work-dir', str(tmp_path / 'w'),
                            '--cfg-options', *demo_cfg_options(1, 1)]) == 0
    assert {s: signal.getsignal(s) for s in before} == before
