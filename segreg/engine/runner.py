"""``SegregRunner``: mmengine's Runner with crash-safe checkpoints, exact
resume, bad data named at load time and clean stops on SIGTERM / SIGUSR1.

Selected by ``runner_type = 'SegregRunner'`` in
configs/_base_/default_runtime.py (tools/train.py and tools/test.py, like
mmseg's, build ``RUNNERS.build(cfg)`` when a config has ``runner_type``).
Against mmengine's ``Runner`` it changes five things, each small:

* ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
  :class:`~segreg.engine.hooks.SafeCheckpointHook` (same options: atomic
  files, old checkpoints removed last, weights-only loadable);
* :class:`~segreg.engine.hooks.IterSeedHook` is registered (per-iteration
  seeding of the training step), and :class:`BadSampleHook` when
  ``skip_bad_samples=True``;
* :class:`~segreg.engine.hooks.PreemptionHook` is registered, and
  :meth:`SegregRunner.train` installs its SIGTERM / SIGUSR1 handlers for the
  whole of training (before the DataLoader workers start): a signal ends
  training after the current iteration with a checkpoint, every rank at the
  same iteration; :attr:`SegregRunner.preempted_by` then names the signal;
  DataLoader workers ignore these signals (the main process stops them);
* every dataset it builds is wrapped in
  :class:`~segreg.datasets.GuardedDataset` (per-sample seeded augmentation
  with ``SeededInfiniteSampler``; a bad image or label raises a one-line
  :class:`~segreg.datasets.BadSampleError`, or, in the training set with
  ``skip_bad_samples=True``, is skipped and counted);
* auto ``--resume`` loads the newest *readable* checkpoint when
  ``last_checkpoint`` or the file it names is missing, empty or unreadable,
  and says so in one line.

Config keys read: ``skip_bad_samples`` (bool, default False). See
docs/reliability.md for what is guaranteed.
"""
from __future__ import annotations

import copy
import functools
from typing import Dict, Optional, Union

from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import DATASETS
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from segreg.datasets.guarded_dataset import GuardedDataset
from segreg.engine.hooks.preemption_hook import (PreemptionHook, StopTraining,
                                                 ignore_signals_in_worker)
from segreg.utils.checkpoint import find_resumable_checkpoint


@RUNNERS.register_module()
class SegregRunner(Runner):
    """mmengine ``Runner`` + the reliability changes of the module docstring.

    Takes the ``Runner``'s arguments; build it with ``RUNNERS.build(cfg)``
    or ``SegregRunner.from_cfg(cfg)``.
    """

    def __init__(self, *args, **kwargs) -> None:
        cfg = kwargs.get('cfg') or {}
        self._skip_bad_samples = bool(cfg.get('skip_bad_samples', False))
        self._config_file = getattr(cfg, 'filename', None)
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------ training
    @property
    def preempted_by(self) -> Optional[str]:
        """The signal that stopped training early (e.g. ``'SIGTERM'``), or
        None when training ran to ``max_iters`` (or has not run)."""
        return self._preemption.stopped_by

    def train(self):
        """``Runner.train``, ended early and cleanly by a signal.

        The handlers are installed before the training DataLoader starts its
        workers (they inherit them and ignore the signal) and restored at
        the end. When :class:`PreemptionHook` stops training (checkpoint
        written), the ``after_train`` and ``after_run`` hooks run as at a
        normal end and the model is returned; see :attr:`preempted_by`.
        """
        self._preemption.install()
        try:
            return super().train()
        except StopTraining:
            self.call_hook('after_train')
            self.call_hook('after_run')
            return self.model
        finally:
            self._stop_train_workers()
            self._preemption.restore()

    def _stop_train_workers(self) -> None:
        """End the training DataLoader's worker processes now.

        Written by hand on purpose: mmengine keeps the loop's infinite
        iterator (and its workers) until the runner is garbage-collected,
        often only at interpreter exit, where multiprocessing SIGTERMs and
        joins them; the workers ignore SIGTERM during training (see
        ``ignore_signals_in_worker``), so they are shut down here, the way
        the iterator's own destructor does it.
        """
        iterator = getattr(getattr(self._train_loop, 'dataloader_iterator',
                                   None), '_iterator', None)
        shutdown = getattr(iterator, '_shutdown_workers', None)
        if shutdown is not None:
            shutdown()

    # ------------------------------------------------------------ hooks
    def register_default_hooks(
            self,
            hooks: Optional[Dict[str, Union[Hook, Dict]]] = None) -> None:
        from segreg.engine.hooks import (BadSampleHook, IterSeedHook,
                                         SafeCheckpointHook)
        hooks = dict(hooks or {})
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook',
                                            interval=1))
        if isinstance(ckpt, dict) and ckpt.get('type') in ('CheckpointHook',
                                                           CheckpointHook):
            # the class, not its name: found whatever the default scope
            hooks['checkpoint'] = dict(ckpt, type=SafeCheckpointHook)
        super().register_default_hooks(hooks)
        self.register_hook(IterSeedHook())
        self._preemption = PreemptionHook()
        self.register_hook(self._preemption)
        if self._skip_bad_samples:
            self.register_hook(BadSampleHook())

    # ------------------------------------------------------------ data
    def build_dataloader(self, dataloader, seed=None, diff_rank_seed=False):
        """``Runner.build_dataloader`` with the dataset in a GuardedDataset
        and workers that ignore the pre-emption signals.

        (An instance method here, unlike mmengine's static one: the wrapper
        needs the config's ``skip_bad_samples`` and file name.)
        """
        if isinstance(dataloader, dict) and isinstance(
                dataloader.get('dataset'), dict):
            dataloader = copy.copy(dataloader)
            dataset = DATASETS.build(dataloader['dataset'])
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
            # skipping applies to training only: a validation or test
            # metric over other images than asked for would be silently off
            train_cfg = self.cfg.get('train_dataloader')
            is_train = train_cfg is not None and dataloader == train_cfg
            dataloader['dataset'] = GuardedDataset(
                dataset, config=self._config_file, offer_skip=is_train,
                skip_bad=self._skip_bad_samples and is_train)
        loader = Runner.build_dataloader(dataloader, seed=seed,
                                         diff_rank_seed=diff_rank_seed)
        preemption = getattr(self, '_preemption', None)
        if preemption is not None and preemption.installed and \
                getattr(loader, 'num_workers', 0) > 0:
            # during training: a worker killed by a pre-emption signal sent
            # to every process would fail the batch the main process awaits
            loader.worker_init_fn = functools.partial(
                ignore_signals_in_worker,
                tuple(int(s) for s in preemption.signals),
                loader.worker_init_fn)
        return loader

    # ------------------------------------------------------------ resume
    def load_or_resume(self) -> None:
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            path, note = find_resumable_checkpoint(self.work_dir)
            if note:
                self.logger.warning(note)
            if path is None:
                if not note:
                    self.logger.info('--resume: no checkpoint in '
                                     f'{self.work_dir}; starting from '
                                     'iteration 0')
                self._has_loaded = True
                return None
            self.logger.info(f'Auto resumed from the latest checkpoint '
                             f'{path}.')
            self.resume(path)
            self._has_loaded = True
            return None
        return super().load_or_resume()
