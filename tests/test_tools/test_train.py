"""tools/train.py: a real Runner on the demo data, resume, and bad input."""
from __future__ import annotations

import glob
import os.path as osp

import pytest
import torch

from conftest import DEMO_CONFIG


def _train(argv):
    import train  # tools/train.py
    return train.main(argv)


@pytest.fixture(scope='module')
def trained_2(tmp_path_factory, tools_on_path, demo_cfg_options):
    """Two iterations of demo training; returns the work dir."""
    work = str(tmp_path_factory.mktemp('train2'))
    rc = _train([DEMO_CONFIG, '--work-dir', work, '--seed', '1',
                 '--cfg-options', *demo_cfg_options(2, 2)])
    assert rc == 0
    return work


def test_training_writes_checkpoint_logs_and_tensorboard(trained_2):
    assert osp.isfile(osp.join(trained_2, 'iter_2.pth'))
    ckpt = torch.load(osp.join(trained_2, 'iter_2.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['meta']['iter'] == 2
    assert 'optimizer' in ckpt and ckpt['optimizer']['state']
    scalars = glob.glob(osp.join(trained_2, '*', 'vis_data', 'scalars.json'))
    assert scalars, 'no mmengine scalar log'
    events = glob.glob(osp.join(trained_2, '*', 'vis_data', '**',
                                'events.out.tfevents*'), recursive=True)
    assert events, 'no TensorBoard event file'
    with open(scalars[0]) as f:
        text = f.read()
    assert 'decode.loss_ce' in text and 'mIoU' in text


def test_resume_restores_iteration_and_optimizer(trained_2, tools_on_path,
                                                 demo_cfg_options):
    from mmengine.runner import Runner

    import train
    saved = torch.load(osp.join(trained_2, 'iter_2.pth'), map_location='cpu',
                       weights_only=True)
    args = train.parse_args([DEMO_CONFIG, '--work-dir', trained_2, '--resume',
                             '--cfg-options', *demo_cfg_options(4, 2)])
    cfg = train.build_cfg(args)
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)
    runner.param_schedulers = runner.build_param_scheduler(
        runner.param_schedulers)
    runner.load_or_resume()
    assert runner.iter == 2
    state = runner.optim_wrapper.state_dict()['state']
    for key, value in saved['optimizer']['state'].items():
        for name, tensor in value.items():
            if torch.is_tensor(tensor):
                assert torch.equal(state[key][name].cpu(), tensor), (key, name)
    assert (runner.param_schedulers[0].last_step ==
            saved['param_schedulers'][0]['last_step'])
    # and the real tool continues to iteration 4 from there
    rc = _train([DEMO_CONFIG, '--work-dir', trained_2, '--resume',
                 '--cfg-options', *demo_cfg_options(4, 2)])
    assert rc == 0
    ckpt = torch.load(osp.join(trained_2, 'iter_4.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['meta']['iter'] == 4


def test_missing_data_root_names_path_and_readme(tmp_path, tools_on_path,
                                                 capsys):
    missing = str(tmp_path / 'nowhere')
    rc = _train([DEMO_CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--cfg-options', f'train_dataloader.dataset.data_root={missing}'])
    err = capsys.readouterr().err
    assert rc == 2
    assert missing in err and 'data/README.md' in err


def test_unknown_cfg_option_key_is_refused(tmp_path, tools_on_path, capsys):
    rc = _train([DEMO_CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--cfg-options', 'model.decode_head.num_clases=3'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'num_clases' in err and 'num_classes' in err


def test_checkpoint_of_another_model_is_refused(trained_2, tmp_path,
                                                tools_on_path, capsys,
                                                demo_cfg_options):
    rc = _train([DEMO_CONFIG, '--work-dir', str(tmp_path / 'w'), '--resume',
                 osp.join(trained_2, 'iter_2.pth'), '--cfg-options',
                 *demo_cfg_options(4, 2), 'model.decode_head.num_classes=5'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'iter_2.pth' in err and 'conv_seg' in err


def test_auto_resume_skips_a_truncated_checkpoint_and_says_so(
        tmp_path, tools_on_path, demo_cfg_options):
    """A kill while iter_4.pth and last_checkpoint were written (simulated:
    both truncated) costs two iterations, not the run."""
    work = str(tmp_path / 'w')
    assert _train([DEMO_CONFIG, '--work-dir', work, '--cfg-options',
                   *demo_cfg_options(4, 2)]) == 0
    with open(osp.join(work, 'iter_4.pth'), 'rb+') as f:
        f.truncate(1000)
    open(osp.join(work, 'last_checkpoint'), 'w').close()  # 0 bytes
    assert _train([DEMO_CONFIG, '--work-dir', work, '--resume',
                   '--cfg-options', *demo_cfg_options(6, 2)]) == 0
    logs = sorted(glob.glob(osp.join(work, '*', '*.log')))
    with open(logs[-1]) as f:
        text = f.read()
    notes = [ln for ln in text.splitlines() if 'auto-resume:' in ln]
    assert len(notes) == 1, text[-3000:]
    assert 'last_checkpoint is empty' in notes[0]
    assert osp.join(work, 'iter_2.pth') in notes[0]
    assert 'resumed epoch: 0, iter: 2' in text
    ckpt = torch.load(osp.join(work, 'iter_6.pth'), weights_only=True)
    assert ckpt['meta']['iter'] == 6
