"""Stop a training run on SIGTERM / SIGUSR1 with a checkpoint, every rank at
the same iteration.

Schedulers announce the end of a job with a signal: SLURM sends SIGTERM at
pre-emption and at the time limit, and the signal named by ``sbatch
--signal=USR1@SECS`` some minutes before the limit; Kubernetes and torchrun
send SIGTERM. Without a handler the process dies at once and the iterations
since the last interval checkpoint are lost. ``PreemptionHook`` (which
``SegregRunner`` registers) turns the signal into a clean stop:

* the handler only records the signal (nothing else is safe inside a
  handler); a second signal, e.g. SIGTERM while the checkpoint of a SIGUSR1
  is being written, is recorded and changes nothing;
* after every training iteration the ranks agree whether any of them
  received one: one all-reduce (max) of one integer, through mmengine's
  ``all_reduce``; during a validation inside training the same happens
  after every validation iteration, so a long validation does not outlast
  a short grace period (skipped, with a note, when the ranks do not all run
  the same number of validation iterations);
* on agreement, the checkpoint of the last completed iteration is written
  by the run's checkpoint hook (``SafeCheckpointHook``: atomic, with
  ``last_checkpoint``; nothing is written twice when the interval
  checkpoint of that iteration exists already) and :class:`StopTraining` is
  raised, which ``SegregRunner.train`` turns into a normal end of training
  (``after_train`` and ``after_run`` hooks run: logs and TensorBoard
  flushed). The validation that would have followed is not run, and
  ``--resume`` does not repeat it;
* a signal in the last iteration or in the final validation does not stop
  the run: it finishes, which costs less than a requeue.

The resumed run is bit-identical to an uninterrupted one (CPU), exactly as
after an interval checkpoint (docs/reliability.md). tools/train.py exits
with :data:`PREEMPTED_EXIT_STATUS` after such a stop.

DataLoader workers ignore these signals (SLURM signals every process of a
job step, a terminal or ``kill -- -PGID`` the whole process group): a worker
killed by SIGTERM (torch's worker handler re-raises it) would fail the main
process's next batch before it could write its checkpoint. The main process
decides, and ends its workers when it stops; ``SegregRunner`` sets
:func:`ignore_signals_in_worker` as every DataLoader's ``worker_init_fn``.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmseg.registry import HOOKS

#: tools/train.py's exit status after a signal stopped training with a
#: checkpoint: EX_TEMPFAIL of sysexits.h ("temporary failure, try again
#: later"); continue with ``--resume``.
PREEMPTED_EXIT_STATUS = 75


class StopTraining(Exception):
    """Raised by :class:`PreemptionHook` once the checkpoint is written."""


def ignore_signals_in_worker(signals: Sequence[int], worker_init_fn,
                             worker_id: int) -> None:
    """``worker_init_fn`` of a DataLoader: ignore ``signals``, then call
    ``worker_init_fn`` (mmengine's seeding; may be None).

    Runs after torch installed its worker signal handlers. A worker that
    hangs can then no longer be ended by the DataLoader's SIGTERM; it still
    exits when it sees its parent gone (torch's watchdog), and SIGKILL
    ends it.
    """
    for sig in signals:
        signal.signal(sig, signal.SIG_IGN)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Checkpoint and stop training when the process receives a signal.

    Args:
        signals (sequence of str or int): The signals that stop training.
            Default: SIGTERM and SIGUSR1.

    Attributes:
        received (int): The first of ``signals`` this process received
            (0: none yet).
        stopped_by (str or None): Name of the signal that stopped training
            (received by this or another rank).
        stopped_at (int or None): The iteration of the checkpoint then.
    """

    priority = 'LOWEST'  # after CheckpointHook: its interval save comes first

    def __init__(self,
                 signals: Sequence[Union[str, int]] = ('SIGTERM',
                                                       'SIGUSR1')) -> None:
        self.signals = [signal.Signals(getattr(signal, s) if isinstance(
            s, str) else s) for s in signals]
        self.received = 0
        self.stopped_by: Optional[str] = None
        self.stopped_at: Optional[int] = None
        self._previous: dict = {}
        self._owner: Optional[int] = None
        self._training = False
        self._check_val = False

    # ------------------------------------------------------------ handlers
    @property
    def installed(self) -> bool:
        """Whether this process's handlers are the hook's now."""
        return bool(self._previous)

    def install(self) -> None:
        """Install the handlers (main thread only; idempotent)."""
        if self._previous or \
                threading.current_thread() is not threading.main_thread():
            return
        self._owner = os.getpid()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put the handlers back that :meth:`install` replaced."""
        if os.getpid() != self._owner:
            return
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        # A forked DataLoader worker inherits this handler: ignore the
        # signal there (the main process stops training and its workers).
        if os.getpid() == self._owner and not self.received:
            self.received = signum

    # ------------------------------------------------------------ agreement
    def _agreed_signal(self) -> int:
        """The largest signal number any rank received (0: none).

        A collective: every rank calls it at the same point.
        """
        flag = torch.tensor([self.received], dtype=torch.int64)
        if get_world_size() > 1:
            all_reduce(flag, op='max')
        return int(flag.item())

    @staticmethod
    def _checkpoint_hook(runner) -> Optional[CheckpointHook]:
        return next((h for h in runner.hooks
                     if isinstance(h, CheckpointHook)), None)

    def _stop(self, runner, signum: int, step: int) -> None:
        name = signal.Signals(signum).name
        hook = self._checkpoint_hook(runner)
        if hook is None:
            runner.logger.warning(f'{name}: no CheckpointHook in this run; '
                                  f'training stops after iteration {step} '
                                  'without a checkpoint')
        else:
            path = hook.file_backend.join_path(hook.out_dir,
                                               hook.filename_tmpl.format(step))
            if hook.last_ckpt != path:
                runner.logger.info(f'{name}: saving checkpoint at {step} '
                                   'iterations')
                hook._save_checkpoint_with_step(
                    runner, step, dict(epoch=runner.epoch, iter=step))
            runner.logger.warning(
                f'{name}: training stopped after iteration {step} of '
                f'{runner.max_iters}; checkpoint {path}; continue with '
                '--resume')
        self.stopped_by, self.stopped_at = name, step
        raise StopTraining(f'{name} after iteration {step}')

    # ------------------------------------------------------------ hook calls
    def before_train(self, runner) -> None:
        from mmengine.runner import IterBasedTrainLoop
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            # mmengine resumes epoch-based training at an epoch start only
            self.restore()
            runner.logger.info('PreemptionHook: epoch-based training; '
                               'SIGTERM / SIGUSR1 are not handled')
            return
        # SegregRunner installs earlier (before the DataLoader workers are
        # forked); this covers the hook in a plain mmengine Runner.
        self.install()
        self._training = True

    def after_train(self, runner) -> None:
        self._training = False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self._training:
            return
        step = runner.iter + 1
        signum = self._agreed_signal()
        if signum and step < runner.max_iters:
            self._stop(runner, signum, step)

    def before_val_epoch(self, runner) -> None:
        self._check_val = False
        if not self._training or runner.iter >= runner.max_iters:
            return
        n = len(runner.val_dataloader)
        counts = torch.tensor([n, -n], dtype=torch.int64)
        if get_world_size() > 1:
            all_reduce(counts, op='max')
        # per-iteration collectives need the same count on every rank
        self._check_val = int(counts[0]) == -int(counts[1])
        if not self._check_val:
            runner.logger.info('PreemptionHook: the ranks run different '
                               'numbers of validation iterations; a signal '
                               'during validation stops training after it')

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        if not self._check_val:
            return
        signum = self._agreed_signal()
        if signum:  # runner.iter: the iteration the validation follows
            self._stop(runner, signum, runner.iter)
