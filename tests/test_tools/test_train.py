"""tools/train.py: a real Runner on the demo data, resume, and mistakes
reported in one line (config, pretrained weights, the mmcv build)."""
from __future__ import annotations

import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import DEMO_CONFIG, REPO_ROOT


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


# --------------------------------------------------------------------------
# mistakes reported in one line, before any data is read
# --------------------------------------------------------------------------
DUAL_IOU = osp.join(osp.dirname(DEMO_CONFIG),
                    'dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
COCO_STUFF = osp.join(
    osp.dirname(osp.dirname(DEMO_CONFIG)), 'deeplabv3plus',
    'deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py')


def _error_lines(err: str) -> list:
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3, err
    assert lines[0].startswith('error: '), err
    return lines


@pytest.fixture
def no_runner(monkeypatch):
    """Fail the test if a runner (and so a dataset) is ever built."""
    from segreg.engine.runner import SegregRunner

    def refuse(*args, **kwargs):
        raise AssertionError('the runner was built: the check came too late')
    monkeypatch.setattr(SegregRunner, '__init__', refuse)


@pytest.mark.parametrize('option,expected', [
    ('model.decode_head.loss_decode.1.type=DualIOULoss',
     ["model.decode_head.loss_decode.1.type = 'DualIOULoss' is not a "
      'registered model type (did you mean DualIoULoss']),
    ('model.decode_head.loss_decode.1.sample_stride=0',
     ['model.decode_head.loss_decode.1 (DualIoULoss)',
      'sample_stride must be an int >= 1, got 0']),
    ('model.decode_head.loss_decode.1.num_classes=5',
     ['model.decode_head.loss_decode.1.num_classes = 5 (DualIoULoss) but '
      'model.decode_head has num_classes = 12']),
    ('model.decode_head.loss_decode.1.solver=newton',
     ["(DualIoULoss): solver must be one of (", "got 'newton'"]),
    ('model.backbone.depth=51', ['model (EncoderDecoder): invalid depth 51']),
], ids=['unknown-type', 'invalid-option', 'num-classes', 'solver',
        'backbone'])
def test_model_config_mistake_is_one_line_before_any_data(
        option, expected, tmp_path, tools_on_path, capsys, no_runner):
    # the data root does not exist either: the model is checked first
    rc = _train([DUAL_IOU, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                 option, f'train_dataloader.dataset.data_root={tmp_path}/no'])
    err = capsys.readouterr().err
    assert rc == 2
    line = _error_lines(err)[0]
    assert len(_error_lines(err)) == 1
    for text in expected:
        assert text in line, line


def test_unknown_hook_type_met_by_the_runner_is_one_line(
        tmp_path, tools_on_path, capsys, demo_cfg_options):
    rc = _train([DEMO_CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--cfg-options', *demo_cfg_options(2, 2),
                 'default_hooks.checkpoint.type=CheckpointHok'])
    err = capsys.readouterr().err
    assert rc == 2
    line = _error_lines(err)[0]
    assert "default_hooks.checkpoint.type = 'CheckpointHok' is not a " \
        'registered hook type (did you mean CheckpointHook' in line, line


@pytest.mark.parametrize('how', ['--debug', 'SEGREG_DEBUG=1'])
def test_debug_shows_the_traceback(how, tmp_path, tools_on_path, capsys,
                                   monkeypatch):
    argv = [DUAL_IOU, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
            'model.decode_head.loss_decode.1.sample_stride=0']
    if how == '--debug':
        argv.insert(1, '--debug')
    else:
        monkeypatch.setenv('SEGREG_DEBUG', '1')
    assert _train(argv) == 2
    err = capsys.readouterr().err
    assert 'Traceback (most recent call last)' in err
    assert 'ValueError' in err
    assert err.strip().splitlines()[-1].startswith('error: model.decode_head')


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (every connection fails) and an empty torch hub cache."""
    import socket

    def blocked(*args, **kwargs):
        raise OSError('network unreachable (blocked by the test)')
    for name in ('create_connection', 'getaddrinfo'):
        monkeypatch.setattr(socket, name, blocked)
    monkeypatch.setattr(socket.socket, 'connect', blocked)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def test_offline_pretrained_weights_are_one_line_naming_url_and_key(
        offline, tmp_path, tools_on_path, capsys, no_runner):
    """The COCO-Stuff config's open-mmlab://resnet50_v1c cannot be fetched:
    one line names the file, its URL, the --cfg-options key for a local
    copy and the cache path; nothing is downloaded."""
    rc = _train([COCO_STUFF, '--work-dir', str(tmp_path / 'w')])
    err = capsys.readouterr().err
    assert rc == 2
    lines = _error_lines(err)
    assert len(lines) == 1, err
    line = lines[0]
    assert 'open-mmlab://resnet50_v1c' in line
    assert 'https://' in line and 'resnet50_v1c-2cccc1ad.pth' in line
    assert '--cfg-options model.pretrained=/path/to/' \
        'resnet50_v1c-2cccc1ad.pth' in line
    assert str(offline / 'resnet50_v1c-2cccc1ad.pth') in line
    assert 'blocked by the test' in line
    assert not offline.exists() or not list(offline.iterdir())


def test_pretrained_weights_in_the_cache_or_a_local_file_need_no_network(
        offline, tmp_path):
    from mmengine.config import Config

    from segreg.utils.checkpoint import (PretrainedWeightsError,
                                         ensure_pretrained_weights)
    cfg = Config.fromfile(COCO_STUFF)
    offline.mkdir(parents=True)
    cached = offline / 'resnet50_v1c-2cccc1ad.pth'
    cached.write_bytes(b'weights')
    assert ensure_pretrained_weights(cfg) == [str(cached)]
    local = tmp_path / 'r50.pth'
    cfg.model.pretrained = str(local)
    with pytest.raises(PretrainedWeightsError, match='does not exist'):
        ensure_pretrained_weights(cfg)
    local.write_bytes(b'weights')
    assert ensure_pretrained_weights(cfg) == [str(local)]


def test_resume_needs_no_pretrained_weights(offline, tmp_path,
                                            tools_on_path):
    """A resumed run replaces every weight: it neither fetches nor loads
    the pretrained backbone (a requeued job on an offline node)."""
    import train
    work = tmp_path / 'w'
    work.mkdir()
    torch.save(dict(meta=dict(iter=4), state_dict={}), work / 'iter_4.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    cfg = train.build_cfg(train.parse_args([COCO_STUFF, '--work-dir',
                                            str(work), '--resume']))
    train.prepare_pretrained(cfg, 'none')
    assert cfg.model.pretrained is None


# an upstream mmseg whose datasets import mmcv's compiled ops, with an mmcv
# that has none (mmcv-lite, or a build for another torch)
NO_MMCV_OPS = '''
import importlib.abc
import sys


class _NoMmcvOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'mmcv._ext':
            raise ModuleNotFoundError("No module named 'mmcv._ext'",
                                      name='mmcv._ext')
        if name == 'mmseg.datasets':  # upstream: mmseg.datasets -> mmcv.ops
            import mmcv._ext  # noqa: F401
        return None


sys.meta_path.insert(0, _NoMmcvOps())
'''


def no_mmcv_ops_env(tmp_path) -> dict:
    site = tmp_path / 'site'
    site.mkdir(exist_ok=True)
    (site / 'sitecustomize.py').write_text(NO_MMCV_OPS)
    env = {k: v for k, v in os.environ.items() if k != 'SEGREG_DEBUG'}
    env.update(PYTHONPATH=f'{site}:{REPO_ROOT}', OMP_NUM_THREADS='1')
    return env


@pytest.mark.parametrize('debug', [False, True], ids=['plain', 'debug'])
def test_mmcv_without_compiled_ops_is_named_in_two_lines(tmp_path, debug):
    env = no_mmcv_ops_env(tmp_path)
    if debug:
        env['SEGREG_DEBUG'] = '1'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
         DEMO_CONFIG, '--work-dir', str(tmp_path / 'w')],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    if debug:
        assert 'Traceback (most recent call last)' in proc.stderr
        return
    lines = _error_lines(proc.stderr)
    assert "No module named 'mmcv._ext'" in lines[0]
    assert 'mmseg.datasets' in lines[0]
    assert 'mmcv>=2.0,<2.2' in proc.stderr and '[onedl]' in proc.stderr
    assert 'Traceback' not in proc.stderr
