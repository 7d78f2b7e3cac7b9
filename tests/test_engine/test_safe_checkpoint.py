"""SafeCheckpointHook and auto-resume: kills during a save (simulated by
truncated and interrupted writes) never cost a good checkpoint."""
from __future__ import annotations

import os
import os.path as osp
from collections import deque

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from segreg.engine.hooks.checkpoint_hook import (SafeCheckpointHook,
                                                 from_weights_only,
                                                 to_weights_only)
from segreg.utils.checkpoint import (find_resumable_checkpoint,
                                     readable_checkpoint)


def _ckpt(path, it):
    torch.save(dict(meta=dict(iter=it), state_dict={'w': torch.full((3, ),
                                                                    it)}),
               path)


def _truncate(path, keep=0.5):
    size = osp.getsize(path)
    with open(path, 'rb+') as f:
        f.truncate(int(size * keep))


@pytest.fixture
def work(tmp_path):
    for it in (8, 16, 24):
        _ckpt(str(tmp_path / f'iter_{it}.pth'), it)
    with open(tmp_path / 'last_checkpoint', 'w') as f:
        f.write(str(tmp_path / 'iter_24.pth'))
    return tmp_path


def test_good_last_checkpoint_is_used_silently(work):
    assert find_resumable_checkpoint(str(work)) == (
        str(work / 'iter_24.pth'), None)


@pytest.mark.parametrize('damage', ['empty', 'missing', 'garbage'])
def test_bad_last_checkpoint_falls_back_to_newest_readable(work, damage):
    pointer = work / 'last_checkpoint'
    if damage == 'missing':
        os.remove(pointer)
    else:
        with open(pointer, 'w') as f:
            f.write('' if damage == 'empty' else '/nowhere/iter_99.pth')
    path, note = find_resumable_checkpoint(str(work))
    assert path == str(work / 'iter_24.pth')
    assert note.count('\n') == 0 and 'last_checkpoint' in note
    assert 'iter_24.pth' in note


@pytest.mark.parametrize('keep', [0.0, 0.5, 0.99])
def test_truncated_latest_pth_falls_back(work, keep):
    _truncate(str(work / 'iter_24.pth'), keep)
    assert readable_checkpoint(str(work / 'iter_24.pth')) is not None
    path, note = find_resumable_checkpoint(str(work))
    assert path == str(work / 'iter_16.pth')
    assert 'iter_24.pth' in note and 'iter_16.pth' in note
    assert note.count('\n') == 0


def test_nothing_readable_says_so(work):
    for it in (8, 16, 24):
        _truncate(str(work / f'iter_{it}.pth'))
    path, note = find_resumable_checkpoint(str(work))
    assert path is None and 'no readable checkpoint' in note


def test_fresh_work_dir_has_nothing_to_say(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) == (None, None)


def test_message_hub_round_trip_is_weights_only_loadable(tmp_path):
    buf = HistoryBuffer(max_length=5)
    for v in (1.5, 2.5, 3.25):
        buf.update(v, count=2)
    hub = dict(log_scalars={'train/loss': buf},
               runtime_info=dict(eta=np.float64(3.5),
                                 arr=np.arange(4, dtype=np.int32),
                                 ids=[8, 16]))
    path = str(tmp_path / 'x.pth')
    torch.save(dict(message_hub=to_weights_only(hub)), path)
    back = from_weights_only(
        torch.load(path, weights_only=True)['message_hub'])
    got = back['log_scalars']['train/loss']
    assert isinstance(got, HistoryBuffer) and got.max_length == 5
    np.testing.assert_array_equal(got._log_history, buf._log_history)
    np.testing.assert_array_equal(got._count_history, buf._count_history)
    assert got.mean() == buf.mean()
    assert back['runtime_info']['eta'] == 3.5
    np.testing.assert_array_equal(back['runtime_info']['arr'], np.arange(4))
    assert back['runtime_info']['ids'] == [8, 16]


class _Hub:
    def __init__(self):
        self.info = {}

    def update_info(self, key, value):
        self.info[key] = value


class _Runner:
    """Just what SafeCheckpointHook._save_checkpoint_with_step touches."""

    def __init__(self, work_dir, fail_after=None):
        self.work_dir = work_dir
        self.message_hub = _Hub()
        self.fail_after = fail_after

    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kw):
        path = osp.join(out_dir, filename)
        _ckpt(path, meta['iter'])
        if self.fail_after is not None:  # the kill arrives mid-write
            _truncate(path, self.fail_after)
            raise KeyboardInterrupt


def _hook(work):
    hook = SafeCheckpointHook(interval=8, by_epoch=False, max_keep_ckpts=2)
    hook.out_dir = str(work)
    from mmengine.fileio import get_file_backend
    hook.file_backend = get_file_backend(str(work))
    hook.keep_ckpt_ids = deque([16, 24], 2)
    return hook


def test_save_writes_atomically_and_removes_the_oldest_last(work):
    hook = _hook(work)
    hook._save_checkpoint_with_step(_Runner(str(work)), 32, dict(iter=32))
    assert readable_checkpoint(str(work / 'iter_32.pth')) is None
    assert not osp.exists(work / 'iter_16.pth')  # beyond max_keep_ckpts=2
    with open(work / 'last_checkpoint') as f:
        assert f.read() == str(work / 'iter_32.pth')
    assert [p for p in os.listdir(work) if '.tmp' in p] == []


@pytest.mark.parametrize('fail_after', [0.0, 0.5])
def test_kill_during_save_keeps_every_good_checkpoint(work, fail_after):
    hook = _hook(work)
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(
            _Runner(str(work), fail_after), 32, dict(iter=32))
    # no partial iter_32.pth, the oldest kept one still there, pointer intact
    assert not osp.exists(work / 'iter_32.pth')
    for it in (16, 24):
        assert readable_checkpoint(str(work / f'iter_{it}.pth')) is None
    assert find_resumable_checkpoint(str(work)) == (
        str(work / 'iter_24.pth'), None)
    # the next start removes the leftover temporary file
    leftovers = [p for p in os.listdir(work) if '.tmp' in p]
    assert leftovers
