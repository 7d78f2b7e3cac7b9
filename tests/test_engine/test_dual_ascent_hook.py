"""DualAscentHook in a real mmengine Runner: it feeds SMeasureLoss the batch's
data samples, projects and steps the duals, logs them, and ``--resume``
continues with the duals of the checkpoint."""
from __future__ import annotations

import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from conftest import REPO_ROOT

SMEASURE_DEMO = osp.join(
    REPO_ROOT, 'configs', 'demo',
    'dualreg-smeasure_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
STATE_KEYS = ('lambda_', 'mu', 'sample_label', 'sample_score',
              'num_dual_steps', 'smeasure_lp.tau', 'smeasure_lp.eps',
              'smeasure_lp.w')
PREFIX = 'decode_head.loss_decode.1.'
SNAPSHOTS: list = []


@HOOKS.register_module(force=True)
class _SnapshotDualsHook(Hook):
    """Test helper: copies the SMeasure state when training (re)starts."""

    def before_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        state = model.state_dict()
        SNAPSHOTS.append({k: state[PREFIX + k].clone() for k in STATE_KEYS})


def _write_config(tmp_path) -> str:
    """The demo SMeasure arm + a DualIoULoss, fast duals, 16 images."""
    path = tmp_path / 'cfg.py'
    path.write_text(f"""
_base_ = {SMEASURE_DEMO!r}
model = dict(decode_head=dict(loss_decode=[
    dict(type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True),
    dict(type='SMeasureLoss', num_classes=12, num_samples=16,
         pool_size=(24, 24), loss_weight=1.0),
    dict(type='DualIoULoss', num_classes=12, loss_weight=1.0),
]))
custom_hooks = [
    dict(type='DualAscentHook', interval=2, eta_lambda=0.5, eta_mu=0.5,
         log_interval=1),
    dict(type='_SnapshotDualsHook'),
]
""")
    return str(path)


def _train(argv):
    import train  # tools/train.py
    return train.main(argv)


def test_train_log_and_resume_keep_duals(tmp_path, tools_on_path,
                                         demo_cfg_options):
    cfg = _write_config(tmp_path)
    work = str(tmp_path / 'work')
    SNAPSHOTS.clear()
    rc = _train([cfg, '--work-dir', work, '--seed', '0', '--cfg-options',
                 *demo_cfg_options(4, 4)])
    assert rc == 0
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), map_location='cpu',
                      weights_only=False)
    saved = {k: ckpt['state_dict'][PREFIX + k] for k in STATE_KEYS}
    # two dual steps happened (interval 2) and moved the duals
    assert saved['num_dual_steps'].item() == 2
    assert saved['mu'].item() != 0.0
    assert (saved['lambda_'] >= 0).all()  # clipped (may all be 0 here)
    pos = saved['sample_label'] == 1
    assert pos.any() and (saved['sample_label'] >= 0).sum() >= 8
    assert (saved['smeasure_lp.tau'][pos] <= saved['smeasure_lp.eps'] + 1e-6
            ).all()
    # duals, eps, scales and slacks are logged (text log, TensorBoard)
    scalars = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    text = open(scalars[0]).read()
    for key in ('dual/smeasure_mu', 'dual/smeasure_lambda_mean',
                'dual/smeasure_slack_mean', 'dual/smeasure_eps',
                'dual/dual_iou_bound_mean', 'dual/dual_iou_term_mean'):
        assert key in text, key

    # resume: training restarts from exactly the saved duals
    rc = _train([cfg, '--work-dir', work, '--resume', '--cfg-options',
                 *demo_cfg_options(6, 2)])
    assert rc == 0
    restored = SNAPSHOTS[-1]
    for k in STATE_KEYS:
        assert torch.equal(restored[k], saved[k]), k
    final = torch.load(osp.join(work, 'iter_6.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    assert final[PREFIX + 'num_dual_steps'].item() == 3


def test_dual_interval_epoch_and_full_projections():
    from segreg.engine.hooks import DualAscentHook
    loader = SimpleNamespace(dataset=list(range(300)), batch_size=8)
    runner = SimpleNamespace(train_dataloader=loader)
    assert DualAscentHook().dual_every(runner) == 38  # ceil(300 / 8)
    assert DualAscentHook(interval=5).dual_every(runner) == 5
    assert DualAscentHook(interval=5,
                          full_projections=True).dual_every(runner) == 1
    with pytest.raises(ValueError):
        DualAscentHook(interval=0)
