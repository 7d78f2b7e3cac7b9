"""Count and log the samples skipped with ``skip_bad_samples=True``.

``GuardedDataset`` (in the process that loads the sample, possibly a
DataLoader worker) records the bad files it skipped in the metainfo of the
sample it returned instead; this hook reads them from each batch in the
main process and logs the count and the distinct files at the end of
training. ``SegregRunner`` registers it when the config sets
``skip_bad_samples=True`` (which applies to the training set only:
validation and test stop at a bad sample).
"""
from __future__ import annotations

from typing import Dict

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from segreg.datasets.guarded_dataset import SKIPPED_KEY


@HOOKS.register_module()
class BadSampleHook(Hook):
    """Log how many bad training samples were skipped (per process).

    Attributes:
        counts (dict): ``{problem line: times skipped}``.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self.counts: Dict[str, int] = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        samples = data_batch.get('data_samples', []) \
            if isinstance(data_batch, dict) else []
        for sample in samples:
            for line in getattr(sample, 'metainfo', {}).get(SKIPPED_KEY, ()):
                self.counts[line] = self.counts.get(line, 0) + 1

    def after_train(self, runner) -> None:
        total = sum(self.counts.values())
        runner.logger.info(
            f'skip_bad_samples: {total} bad sample(s) skipped in train '
            f'({len(self.counts)} distinct)' + ''.join(
                f'\n  {n}x {line}' for line, n in sorted(self.counts.items())))
