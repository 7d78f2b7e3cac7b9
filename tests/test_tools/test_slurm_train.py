"""tools/slurm_train.sh against fake sbatch / srun / scontrol: what it asks
SLURM for, how a signal reaches the task, when it requeues, and what a
requeued run passes to tools/train.py. (The real training path, a signal
mid-run and an exact resume of the requeued job, is
tests/test_engine/test_preemption.py.)"""
from __future__ import annotations

import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from conftest import DEMO_CONFIG, REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tests', 'test_engine'))
from preempt_helpers import fake_log, fake_slurm  # noqa: E402

SCRIPT = osp.join(REPO_ROOT, 'tools', 'slurm_train.sh')

# A stand-in for `python -u tools/train.py ...` (given as PYTHON): records
# its arguments; with FAKE_TASK_STATUS it exits at once with that status,
# else it waits for SIGTERM / SIGUSR1 and then stops as a pre-empted run
# does (status 75, also written to $SEGREG_STATUS_FILE).
FAKE_TASK = r'''#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_SLURM_LOG/task"
stop() {
  echo "$1" >> "$FAKE_SLURM_LOG/signals"
  echo 75 > "$SEGREG_STATUS_FILE"
  exit 75
}
trap 'stop TERM' TERM
trap 'stop USR1' USR1
if [ -n "${FAKE_TASK_STATUS:-}" ]; then
  echo "$FAKE_TASK_STATUS" > "$SEGREG_STATUS_FILE"
  exit "$FAKE_TASK_STATUS"
fi
touch "$FAKE_SLURM_LOG/ready"
while :; do sleep 0.05; done
'''


@pytest.fixture
def slurm(tmp_path):
    """(folder of the fakes, environment) for running the script."""
    folder = str(tmp_path / 'slurm')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('SLURM_', 'SEGREG_'))}
    env.update(fake_slurm(folder))
    task = osp.join(folder, 'bin', 'fake_python')
    with open(task, 'w') as f:
        f.write(FAKE_TASK)
    os.chmod(task, 0o755)
    env['PYTHON'] = task
    return folder, env


def _run(env, *args, **extra):
    return subprocess.run(['bash', SCRIPT, 'gpu', 'seg', DEMO_CONFIG, *args],
                          cwd=REPO_ROOT, env=dict(env, **extra),
                          capture_output=True, text=True, timeout=60)


def test_outside_a_job_it_submits_itself_with_requeue_and_signal(slurm):
    folder, env = slurm
    proc = _run(env, '--work-dir', 'w', '--seed', '1', GPUS='8',
                GPUS_PER_NODE='4', PREEMPT_SECS='600', TIME='1-00:00:00',
                SBATCH_ARGS='--account=lab')
    assert proc.returncode == 0, proc.stderr
    assert 'Submitted batch job 4242' in proc.stdout
    args = fake_log(folder, 'sbatch')
    for arg in ('--partition=gpu', '--job-name=seg', '--ntasks=8',
                '--ntasks-per-node=4', '--gres=gpu:4', '--time=1-00:00:00',
                '--requeue', '--signal=B:USR1@600', '--open-mode=append',
                '--output=slurm-%x-%j.out',
                f'--export=ALL,SEGREG_ROOT={REPO_ROOT}', '--account=lab'):
        assert arg in args, (arg, args)
    # the job runs this same script with the same arguments
    script = args.index(SCRIPT)
    assert args[script + 1:] == ['gpu', 'seg', DEMO_CONFIG, '--work-dir',
                                 'w', '--seed', '1']
    assert not fake_log(folder, 'srun')


def test_a_requeued_run_trains_with_resume_in_place_of_any_given(slurm):
    folder, env = slurm
    proc = _run(env, '--resume', '/old/iter_4.pth', '--seed', '1',
                '--resume=/x.pth', SLURM_JOB_ID='7', SLURM_RESTART_COUNT='2',
                FAKE_SRUN_EXEC='0')
    assert proc.returncode == 0, proc.stderr
    srun = fake_log(folder, 'srun')[0]
    assert srun.endswith(f'{DEMO_CONFIG} --launcher slurm --seed 1 --resume')
    assert '/old/iter_4.pth' not in srun and '/x.pth' not in srun
    assert '--kill-on-bad-exit=1' in srun
    # the first run never resumes on its own
    _run(env, '--seed', '1', SLURM_JOB_ID='7', FAKE_SRUN_EXEC='0')
    assert '--resume' not in fake_log(folder, 'srun')[1]


@pytest.mark.parametrize('sig', ['USR1', 'TERM'])
def test_a_signal_to_the_job_script_reaches_the_task_then_requeue(slurm,
                                                                 sig):
    """SIGUSR1 (``--signal=B:USR1@SECS``) or SIGTERM (pre-emption) to the
    batch script: passed on to the task through srun; the task stops with
    75 and the script requeues the job and exits 75."""
    folder, env = slurm
    proc = subprocess.Popen(['bash', SCRIPT, 'gpu', 'seg', DEMO_CONFIG],
                            cwd=REPO_ROOT, env=dict(env, SLURM_JOB_ID='99'),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    ready = osp.join(folder, 'log', 'ready')
    deadline = time.monotonic() + 60
    while not osp.exists(ready) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert osp.exists(ready), proc.communicate(timeout=10)
    proc.send_signal(getattr(signal, f'SIG{sig}'))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err
    assert fake_log(folder, 'signals') == [sig]
    assert fake_log(folder, 'scontrol') == ['requeue 99']
    assert 'job 99 requeued' in err


def test_when_requeue_is_refused_it_says_how_to_resume(slurm):
    folder, env = slurm
    proc = _run(env, SLURM_JOB_ID='5', FAKE_TASK_STATUS='75',
                FAKE_SCONTROL_STATUS='1')
    assert proc.returncode == 75
    assert fake_log(folder, 'scontrol') == ['requeue 5']
    assert 'could not be requeued' in proc.stderr and '--resume' in \
        proc.stderr


@pytest.mark.parametrize('status', ['0', '2'])
def test_other_statuses_pass_through_without_requeue(slurm, status):
    folder, env = slurm
    proc = _run(env, SLURM_JOB_ID='5', FAKE_TASK_STATUS=status)
    assert proc.returncode == int(status)
    assert not fake_log(folder, 'scontrol')


def test_usage_error_is_status_2(slurm):
    _, env = slurm
    proc = subprocess.run(['bash', SCRIPT, 'gpu'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and 'usage:' in proc.stderr
