"""kill -9 and --resume through tools/train.py: the same run, bit for bit.

Each case trains the demo model three times in subprocesses (CPU, one
thread): uninterrupted; killed with SIGKILL by a test hook at a point after
the first checkpoint; restarted with ``--resume``. The final checkpoints are
compared tensor by tensor (model, loss buffers, optimizer, schedulers) and
the last validation metrics number by number.
"""
from __future__ import annotations

import json
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO_ROOT

# cross-entropy + DualIoULoss with its defaults (pixel subsampling)
DUAL_IOU = osp.join(REPO_ROOT, 'configs', 'demo',
                    'dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
# the persistent-dual form: mu / count / log_eps buffers carried across steps
DUAL_ASCENT = osp.join(REPO_ROOT, 'configs', 'demo', 'variants',
                       'dualiou-dual-ascent_r18-tiny_demo-96x96.py')
MAX_ITERS, INTERVAL = 16, 8

# Runs tools/train.py, SIGKILLing itself at a chosen hook call (argv[1]:
# "train:K" after training iteration K, "val:K" inside the validation that
# follows iteration K, "none").
_RUNNER = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, os.path.join(sys.argv[2], 'tools'))
    import segreg  # noqa: F401
    from mmengine.hooks import Hook
    from mmseg.registry import HOOKS
    where, _, at = sys.argv[1].partition(':')

    class KillHook(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            if where == 'train' and runner.iter + 1 == int(at):
                os.kill(os.getpid(), signal.SIGKILL)

        def after_val_iter(self, runner, batch_idx, data_batch=None,
                           outputs=None):
            if where == 'val' and runner.iter == int(at) and batch_idx == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    HOOKS.register_module(module=KillHook)
    import train
    build = train.build_cfg

    def build_cfg(args):
        cfg = build(args)
        if where != 'none':
            cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
                dict(type='KillHook')]
        return cfg

    train.build_cfg = build_cfg
    sys.exit(train.main(sys.argv[3:]))
''')


def _train(kill: str, config: str, work: str, options: list) -> int:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT)
    proc = subprocess.run(
        [sys.executable, '-c', _RUNNER, kill, REPO_ROOT, config, '--work-dir',
         work, '--cfg-options', *options] + (['--resume'] if kill == 'resume'
                                             else []),
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if kill in ('none', 'resume'):
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode


def _last_val(work: str) -> dict:
    # the resumed run logs into a second timestamped folder: the newest
    scalars = sorted(glob.glob(osp.join(work, '*', 'vis_data',
                                        'scalars.json')))[-1]
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if 'mIoU' in r][-1]


def _assert_same(a, b, where='') -> None:
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f'{where}: max diff ' \
            f'{(a.double() - b.double()).abs().max().item()}'
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


@pytest.mark.slow
@pytest.mark.parametrize('config,workers,kill', [
    (DUAL_IOU, 0, 'train:12'),
    (DUAL_ASCENT, 2, 'val:8'),
], ids=['ce+dualiou-workers0-kill-mid-interval',
        'dual-ascent-workers2-kill-in-val'])
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, config,
                                                     workers, kill,
                                                     demo_cfg_options):
    options = demo_cfg_options(MAX_ITERS, INTERVAL) + [
        f'train_dataloader.num_workers={workers}',
        'default_hooks.logger.interval=4']
    full, cut = str(tmp_path / 'full'), str(tmp_path / 'cut')
    _train('none', config, full, options)
    rc = _train(kill, config, cut, options)
    assert rc == -signal.SIGKILL
    assert not osp.exists(osp.join(cut, f'iter_{MAX_ITERS}.pth'))
    _train('resume', config, cut, options)

    a = torch.load(osp.join(full, f'iter_{MAX_ITERS}.pth'),
                   weights_only=True)
    b = torch.load(osp.join(cut, f'iter_{MAX_ITERS}.pth'),
                   weights_only=True)
    assert len(a['state_dict']) > 200
    _assert_same(a['state_dict'], b['state_dict'], 'state_dict')
    _assert_same(a['optimizer'], b['optimizer'], 'optimizer')
    _assert_same(a['param_schedulers'], b['param_schedulers'],
                 'param_schedulers')
    if config == DUAL_ASCENT:
        duals = [k for k in a['state_dict'] if k.endswith(('.mu', '.count'))]
        assert duals, 'the dual-ascent loss keeps buffers'
    va, vb = _last_val(full), _last_val(cut)
    assert va['step'] == vb['step'] == MAX_ITERS
    for key in ('aAcc', 'mIoU', 'mAcc', 'mFscore'):
        assert va[key] == vb[key], key
