"""A CheckpointHook whose files survive a kill at any moment.

mmengine's ``CheckpointHook`` writes ``iter_K.pth`` and ``last_checkpoint``
in place and removes the oldest checkpoint *before* writing the new one: a
``kill -9`` during a save leaves a 0-byte ``last_checkpoint`` or a partial
``.pth``, and sometimes only one good file. ``SafeCheckpointHook`` (which
``SegregRunner`` uses in place of ``CheckpointHook``, same options):

* writes every checkpoint and ``last_checkpoint`` to a hidden temporary
  name in the same folder, flushes it to disk and renames it (``os.replace``
  is atomic), so each file is either the old one or the complete new one;
* removes a checkpoint beyond ``max_keep_ckpts`` only after the new one and
  ``last_checkpoint`` are complete;
* removes temporary files a killed save left behind when training starts;
* keeps non-tensor objects out of the file, so ``torch.load(path,
  weights_only=True)`` loads it without any allow-list: mmengine's
  ``HistoryBuffer`` log scalars and NumPy values of the message hub are
  stored as tagged dicts of tensors and numbers, and turned back into
  ``HistoryBuffer`` / NumPy when a checkpoint is loaded.

Resuming from the newest *readable* checkpoint is ``SegregRunner``'s part
(:func:`segreg.utils.checkpoint.find_resumable_checkpoint`).
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmseg.registry import HOOKS

from segreg.utils.checkpoint import atomic_write_text, fsync_replace

_TAG = '__segreg__'


def _same_mapping(obj: dict, items) -> dict:
    # OrderedDict is allowed by torch's weights-only unpickler; other dict
    # subclasses become plain dicts.
    return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)


def to_weights_only(obj: Any) -> Any:
    """Replace HistoryBuffer / NumPy objects by tagged plain containers."""
    if isinstance(obj, HistoryBuffer):
        return {_TAG: 'HistoryBuffer', 'max_length': int(obj.max_length),
                'log': torch.from_numpy(np.array(obj._log_history)),
                'count': torch.from_numpy(np.array(obj._count_history))}
    if isinstance(obj, np.ndarray):
        return {_TAG: 'ndarray', 'data': torch.from_numpy(obj.copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return _same_mapping(obj, ((k, to_weights_only(v))
                                   for k, v in obj.items()))
    if isinstance(obj, list):
        return [to_weights_only(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(to_weights_only(v) for v in obj)
    return obj


def from_weights_only(obj: Any) -> Any:
    """Inverse of :func:`to_weights_only`."""
    if isinstance(obj, dict):
        tag = obj.get(_TAG)
        if tag == 'HistoryBuffer':
            buf = HistoryBuffer(max_length=obj['max_length'])
            buf._log_history = obj['log'].numpy()
            buf._count_history = obj['count'].numpy()
            return buf
        if tag == 'ndarray':
            return obj['data'].numpy()
        return _same_mapping(obj, ((k, from_weights_only(v))
                                   for k, v in obj.items()))
    if isinstance(obj, list):
        return [from_weights_only(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(from_weights_only(v) for v in obj)
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic, weights-only-loadable files.

    Takes exactly ``CheckpointHook``'s arguments; see the module docstring.
    Local folders only: with a remote ``backend_args`` it behaves like
    ``CheckpointHook`` (which writes the remote object in one request).
    """

    def _local(self) -> bool:
        return self.backend_args is None and self.file_client_args is None \
            and '://' not in str(self.out_dir)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and self._local():
            for tmp in glob.glob(osp.join(self.out_dir, '.*.tmp*')) + \
                    glob.glob(osp.join(runner.work_dir, '.*.tmp*')):
                os.remove(tmp)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('message_hub', 'meta'):
            if key in checkpoint:
                checkpoint[key] = to_weights_only(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('message_hub', 'meta'):
            if key in checkpoint:
                checkpoint[key] = from_weights_only(checkpoint[key])

    def _remove(self, step) -> None:
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed saves folders
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # mmengine's order, except that the file beyond max_keep_ckpts is
        # removed at the end, once the new checkpoint is complete.
        if not self._local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        drop = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                drop = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        tmp_name = f'.{ckpt_filename}.tmp{os.getpid()}'
        runner.save_checkpoint(
            self.out_dir, tmp_name, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        fsync_replace(osp.join(self.out_dir, tmp_name), self.last_ckpt)
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        if drop is not None and drop != step:
            self._remove(drop)
