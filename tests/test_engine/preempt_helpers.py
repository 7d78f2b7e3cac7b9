"""Signals sent from inside a training run, for the pre-emption tests.

Training subprocesses import this module through the config
(``--cfg-options custom_imports.imports=[segreg,preempt_helpers]``, with
this folder on PYTHONPATH). When ``SEGREG_TEST_SIGNAL`` is set, e.g.
``at=train:5,signal=SIGTERM,to=self,again=SIGTERM,rank=1``, every
SegregRunner also registers a :class:`SendSignalHook` built from it:

* ``at=train:K``: before training iteration K (1-based) runs;
  ``at=val:K``: after the first batch of the validation that follows
  iteration K;
* ``to``: ``self``, ``parent`` (the launcher script when a fake srun execs
  the task), ``group`` (every process of the process group: the DataLoader
  workers too, as SLURM signals a job step) or ``env:NAME`` (the pid in
  that environment variable);
* ``rank``: only that rank sends;
* ``again``: a second signal to itself while the stop checkpoint is being
  written.

After sending, the hook waits until this process's ``PreemptionHook`` has
seen a signal (forwarded ones take a moment), so the stop iteration is
deterministic. Also: helpers that compare two checkpoints and read the last
validation metrics of a work dir.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def parse_spec(text: str) -> dict:
    return dict(item.split('=', 1) for item in text.split(',') if item)


@HOOKS.register_module()
class SendSignalHook(Hook):
    priority = 'HIGHEST'

    def __init__(self, at: str, signal: str = 'SIGTERM', to: str = 'self',
                 again: str = '', rank: str = '') -> None:
        self.where, _, it = at.partition(':')
        self.it = int(it)
        self.signal = signal
        self.to = to
        self.again = again
        self.rank = int(rank) if rank != '' else None
        self.sent = False

    def _send(self, runner) -> None:
        if self.rank is not None and get_rank() != self.rank:
            return
        sig = getattr(signal, self.signal)
        if self.to == 'group':
            os.killpg(os.getpgid(0), sig)
        else:
            pid = {'self': os.getpid(), 'parent': os.getppid()}.get(self.to)
            if pid is None:
                pid = int(os.environ[self.to.split(':', 1)[1]])
            os.kill(pid, sig)
        self.sent = True
        hook = next(h for h in runner.hooks
                    if type(h).__name__ == 'PreemptionHook')
        deadline = time.monotonic() + 120
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.01)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.where == 'train' and runner.iter + 1 == self.it:
            self._send(runner)

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        if self.where == 'val' and runner.iter == self.it and batch_idx == 0:
            self._send(runner)

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if self.sent and self.again:
            os.kill(os.getpid(), getattr(signal, self.again))


def _install() -> None:
    spec = os.environ.get('SEGREG_TEST_SIGNAL')
    if not spec:
        return
    from segreg.engine.runner import SegregRunner
    register = SegregRunner.register_default_hooks

    def register_default_hooks(self, hooks=None):
        register(self, hooks)
        self.register_hook(SendSignalHook(**parse_spec(spec)))

    SegregRunner.register_default_hooks = register_default_hooks


_install()


# ---------------------------------------------------------------- checks
def assert_same(a, b, where='') -> None:
    """Tensors, dicts and lists equal bit for bit."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f'{where}: max diff ' \
            f'{(a.double() - b.double()).abs().max().item()}'
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def assert_same_run(full: str, cut: str, iters: int) -> None:
    """The final checkpoints and last validation metrics of two work dirs
    are identical (model, buffers, optimizer, schedulers)."""
    a = torch.load(osp.join(full, f'iter_{iters}.pth'), weights_only=True)
    b = torch.load(osp.join(cut, f'iter_{iters}.pth'), weights_only=True)
    assert len(a['state_dict']) > 100
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_same(a[key], b[key], key)
    va, vb = last_val(full), last_val(cut)
    assert va['step'] == vb['step'] == iters
    for key in ('aAcc', 'mIoU', 'mAcc', 'mFscore'):
        assert va[key] == vb[key], key


def last_val(work: str) -> dict:
    """The last validation row of the newest run in ``work``."""
    scalars = sorted(glob.glob(osp.join(work, '*', 'vis_data',
                                        'scalars.json')))[-1]
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if 'mIoU' in r][-1]


def checkpoint_iter(work: str) -> int:
    """``meta.iter`` of the checkpoint ``last_checkpoint`` names."""
    with open(osp.join(work, 'last_checkpoint')) as f:
        path = f.read().strip()
    ckpt = torch.load(path, weights_only=True, map_location='cpu')
    assert osp.basename(path) == f'iter_{ckpt["meta"]["iter"]}.pth'
    return ckpt['meta']['iter']


# ---------------------------------------------------------------- fake SLURM
FAKE_SRUN = r'''#!/usr/bin/env bash
# fake srun: records its arguments, drops its own options and execs the task
# (one task, in this process: signals to srun reach the task directly, as
# srun forwards them). mmengine's slurm launcher needs CUDA, so the task
# runs with --launcher none. FAKE_SRUN_EXEC=0: record only, exit 0.
printf '%s\n' "$*" >> "$FAKE_SLURM_LOG/srun"
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
[ "${FAKE_SRUN_EXEC:-1}" = 1 ] || exit 0
args=()
for a in "$@"; do
  if [ "$a" = slurm ] && [ "${#args[@]}" -gt 0 ] && \
     [ "${args[${#args[@]}-1]}" = --launcher ]; then a=none; fi
  args+=("$a")
done
exec "${args[@]}"
'''

FAKE_SCONTROL = r'''#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_SLURM_LOG/scontrol"
exit "${FAKE_SCONTROL_STATUS:-0}"
'''

FAKE_SBATCH = r'''#!/usr/bin/env bash
printf '%s\n' "$@" > "$FAKE_SLURM_LOG/sbatch"
echo "Submitted batch job 4242"
'''


def fake_slurm(folder) -> dict:
    """Fake ``srun``, ``scontrol`` and ``sbatch`` in ``folder/bin``; their
    logs in ``folder/log`` (one line per call; sbatch: one argument per
    line). Returns the environment entries that put them first on PATH."""
    bin_dir, log_dir = osp.join(folder, 'bin'), osp.join(folder, 'log')
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    for name, text in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL),
                       ('sbatch', FAKE_SBATCH)):
        path = osp.join(bin_dir, name)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, 0o755)
    return dict(PATH=f'{bin_dir}:{os.environ["PATH"]}', FAKE_SLURM_LOG=log_dir)


def fake_log(folder, name: str) -> list:
    path = osp.join(folder, 'log', name)
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return f.read().splitlines()
