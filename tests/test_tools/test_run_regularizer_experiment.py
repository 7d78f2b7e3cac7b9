"""tools/run_regularizer_experiment.py: the study preset over ablate."""
from __future__ import annotations

import os.path as osp

import pytest

from conftest import REPO_ROOT


@pytest.fixture
def study(tools_on_path):
    import run_regularizer_experiment
    return run_regularizer_experiment


def test_arms_of_both_datasets_exist_and_variants_are_found(study):
    demo, aerial = study.known_arms('demo'), study.known_arms('aerial')
    for table in (demo, aerial):
        assert {'ce', 'dual_iou', 'lovasz'} <= set(table)
        for cfg in table.values():
            assert osp.isfile(osp.join(REPO_ROOT, cfg)), cfg
    assert 'dual_iou_skip' in demo and 'dual_iou_direct_stride4' in demo
    assert 'dual_iou_direct' in aerial
    assert 'aerial' in aerial['dual_iou'] and 'aerial' not in demo['dual_iou']
    assert all('aerial' in c for c in aerial.values())
    with pytest.raises(ValueError):
        study.known_arms('cityscapes')


def test_ablate_command_line(study):
    args, rest = study.parse_args(['--dataset', 'aerial', '--arms', 'ce',
                                   'x=some/config.py', '--iters', '4000',
                                   '--jobs', '2', '--cfg-options', 'a=1'])
    argv = study.ablate_argv(args, rest)
    arms = argv[argv.index('--arms') + 1:argv.index('--seeds')]
    assert arms[0].startswith('ce=') and arms[0].endswith(
        'deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py')
    assert arms[1] == 'x=some/config.py'
    assert argv[argv.index('--work-root') + 1] == osp.join(
        'work_dirs', 'regularizer_experiment', 'aerial')
    opts = argv[argv.index('--cfg-options') + 1:]
    assert opts == ['train_cfg.max_iters=4000', 'param_scheduler.1.end=4000',
                    'a=1']
    assert argv.count('--cfg-options') == 1 and '--jobs' in argv
    args, rest = study.parse_args(['--arms', 'ce', 'nope'])
    with pytest.raises(SystemExit, match='nope'):
        study.ablate_argv(args, rest)


def test_dry_run_and_list(study, tmp_path, capsys):
    assert study.main(['--list-arms']) == 0
    assert 'dual_iou_stride4' in capsys.readouterr().out
    assert study.main(['--arms', 'ce', 'dual_iou', '--seeds', '0',
                       '--work-root', str(tmp_path), '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '2 runs (2 arms x 1 seeds)' in out and 'train, then evaluate' in out


def test_missing_dataset_is_generated_once(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    assert study.ensure_data('aerial', [], run=lambda cmd, **kw: calls.append(
        cmd)) is True
    cmd = calls[0]
    assert cmd[1].endswith('make_demo_data.py')
    assert cmd[cmd.index('--kind') + 1] == 'aerial'
    assert cmd[cmd.index('--out') + 1] == 'data/demo_aerial'
    # not for a dry run, nor when the user points the configs elsewhere
    assert not study.ensure_data('demo', ['--dry-run'], run=calls.append)
    assert not study.ensure_data(
        'demo', ['--cfg-options', 'train_dataloader.dataset.data_root=/x'],
        run=calls.append)
    (tmp_path / 'data' / 'demo').mkdir(parents=True)
    assert not study.ensure_data('demo', [], run=calls.append)
    assert len(calls) == 1


def test_collage_arms_are_the_realistic_configs_with_the_anchors(study):
    arms = study.known_arms('collage')
    assert list(arms)[0] == 'ce'
    assert {'dual_iou', 'lovasz', 'jml', 'jml_mix', 'dice'} <= set(arms)
    for cfg in arms.values():
        assert cfg.startswith('configs/realistic/') and osp.isfile(
            osp.join(study.REPO, cfg)), cfg


def test_batch_sweep_keeps_the_images_seen(study):
    """--batch / --ranks: iterations, warm-up and intervals x 8 / G, the
    learning rate x sqrt(G / 8) (G = batch x ranks), its own work root; a
    simulated 4 x 2 DDP run has the schedule of batch 8."""
    from mmengine import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT,
                                   study.known_arms('collage')['ce']))
    opts = dict(o.split('=') for o in study.schedule_options(cfg, None, 2))
    assert opts['train_dataloader.batch_size'] == '2'
    assert opts['train_cfg.max_iters'] == '8000'
    assert opts['param_scheduler.1.end'] == '8000'
    assert opts['param_scheduler.0.end'] == opts[
        'param_scheduler.1.begin'] == '200'
    assert opts['train_cfg.val_interval'] == '2000'
    assert opts['default_hooks.checkpoint.interval'] == '2000'
    assert float(opts['optim_wrapper.optimizer.lr']) == pytest.approx(1e-3)
    ddp = dict(o.split('=') for o in study.schedule_options(cfg, None, 2, 4))
    assert ddp['train_cfg.max_iters'] == '2000'
    assert float(ddp['optim_wrapper.optimizer.lr']) == pytest.approx(2e-3)
    assert study.schedule_options(cfg, 1000, 4)[1] == \
        'train_cfg.max_iters=2000'
    args, rest = study.parse_args(['--dataset', 'collage', '--arms', 'ce',
                                   'jml', '--batch', '2', '--ranks', '4'])
    argv = study.ablate_argv(args, rest)
    assert argv[argv.index('--work-root') + 1].endswith('collage_b2x4')
    assert argv[argv.index('--ranks') + 1] == '4'
    assert 'train_cfg.max_iters=2000' in argv
    args, rest = study.parse_args(['--dataset', 'collage', '--arms', 'ce'])
    argv = study.ablate_argv(args, rest)
    assert '--ranks' not in argv and '--cfg-options' not in argv
    assert argv[argv.index('--work-root') + 1].endswith('collage')
