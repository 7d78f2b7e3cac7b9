"""Every shipped training config gets the reliable runtime (no config opts
out of exact resume or crash-safe checkpoints by accident)."""
from __future__ import annotations

import glob
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def test_every_config_uses_segreg_runner_and_seeded_sampler():
    assert len(CONFIGS) > 20
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        name = osp.relpath(path, REPO)
        assert cfg.get('runner_type') == 'SegregRunner', name
        assert cfg.get('skip_bad_samples') is False, name
        assert cfg.train_dataloader.sampler.type == 'SeededInfiniteSampler', \
            name
        assert cfg.default_hooks.checkpoint.type in (
            'CheckpointHook', 'SafeCheckpointHook'), name


@pytest.mark.parametrize('given', ['CheckpointHook', None])
def test_runner_swaps_in_the_safe_checkpoint_hook(given, tmp_path):
    import segreg  # noqa: F401
    from segreg.engine import SegregRunner
    from segreg.engine.hooks import (IterSeedHook, SafeCheckpointHook)

    class _Stub(SegregRunner):
        def __init__(self):  # only the hook registry of a Runner
            self._hooks = []
            self._skip_bad_samples = False

    runner = _Stub()
    hooks = None if given is None else dict(
        checkpoint=dict(type=given, interval=7, by_epoch=False))
    runner.register_default_hooks(hooks)
    types = [type(h) for h in runner.hooks]
    assert SafeCheckpointHook in types and IterSeedHook in types
    ckpt = next(h for h in runner.hooks if isinstance(h, SafeCheckpointHook))
    if given is not None:
        assert ckpt.interval == 7 and ckpt.by_epoch is False
