"""Count and log the samples skipped with ``skip_bad_samples=True``.

``GuardedDataset`` (in the process that loads the sample, possibly a
DataLoader worker) records the bad files it skipped in the metainfo of the
sample it returned instead; this hook reads them from each batch in the
main process and logs the count and the distinct files at the end of
training, of each validation and of a test. ``SegregRunner`` registers it
when the config sets ``skip_bad_samples=True``.
"""
from __future__ import annotations

from typing import Dict

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from segreg.datasets.guarded_dataset import SKIPPED_KEY


@HOOKS.register_module()
class BadSampleHook(Hook):
    """Log how many bad samples were skipped (per process), once per phase.

    Attributes:
        counts (dict): ``{'train'|'val'|'test': {problem line: times}}``.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self.counts: Dict[str, Dict[str, int]] = {}

    def _collect(self, phase: str, data_batch) -> None:
        samples = (data_batch or {}).get('data_samples', []) \
            if isinstance(data_batch, dict) else []
        for sample in samples:
            for line in getattr(sample, 'metainfo', {}).get(SKIPPED_KEY, ()):
                bucket = self.counts.setdefault(phase, {})
                bucket[line] = bucket.get(line, 0) + 1

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self._collect('train', data_batch)

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._collect('val', data_batch)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self._collect('test', data_batch)

    def _report(self, runner, phase: str) -> None:
        bucket = self.counts.pop(phase, {})
        total = sum(bucket.values())
        runner.logger.info(
            f'skip_bad_samples: {total} bad sample(s) skipped in {phase} '
            f'({len(bucket)} distinct)' + ''.join(
                f'\n  {n}x {line}' for line, n in sorted(bucket.items())))

    def after_train(self, runner) -> None:
        self._report(runner, 'train')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'test')
