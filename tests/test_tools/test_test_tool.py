"""tools/test.py on a 2-iteration demo checkpoint: files, numbers, errors."""
from __future__ import annotations

import json
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import DEMO_CONFIG, REPO_ROOT


def _test(argv):
    import test as test_tool  # tools/test.py
    return test_tool.main(argv)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, tools_on_path, demo_cfg_options):
    """Two iterations of demo training; returns the checkpoint path."""
    import train
    work = str(tmp_path_factory.mktemp('test_tool_train'))
    rc = train.main([DEMO_CONFIG, '--work-dir', work, '--seed', '0',
                     '--cfg-options', *demo_cfg_options(2, 2)])
    assert rc == 0
    return osp.join(work, 'iter_2.pth')


@pytest.fixture(scope='module')
def evaluated(checkpoint, tmp_path_factory, demo_cfg_options):
    out = str(tmp_path_factory.mktemp('test_tool_eval'))
    rc = _test([DEMO_CONFIG, checkpoint, '--out', out, '--save-preds',
                '--cfg-options', *demo_cfg_options(2, 2)])
    assert rc == 0
    return out


def _ground_truth(data_root):
    """GT label maps of the demo val set through the dataset's own pipeline."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO_CONFIG)
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = data_root
    ds = DATASETS.build(ds_cfg)
    out = {}
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        out[osp.basename(sample.img_path)] = \
            sample.gt_sem_seg.data[0].numpy()
    return out, list(ds.metainfo['classes'])


def test_writes_metrics_confusion_per_image_and_preds(evaluated,
                                                      demo_data_root):
    with open(osp.join(evaluated, 'metrics.json')) as f:
        m = json.load(f)
    for k in ('aAcc', 'mIoU', 'mAcc', 'mDice', 'mFscore', 'mPrecision',
              'mRecall'):
        assert isinstance(m[k], float) and 0 <= m[k] <= 100, k
    from segreg.datasets import DEMO_CLASSES
    assert m['classes'] == list(DEMO_CLASSES)
    assert set(m['per_class']) == set(DEMO_CLASSES)
    assert set(next(iter(m['per_class'].values()))) == {
        'IoU', 'Acc', 'Dice', 'Fscore', 'Precision', 'Recall'}
    assert m['num_images'] == 8 and m['schema_version'] == 1
    assert m['checkpoint'].endswith('iter_2.pth')
    assert m['config'].endswith(osp.basename(DEMO_CONFIG))
    conf = np.load(osp.join(evaluated, 'confusion.npy'))
    assert conf.shape == (12, 12) and conf.dtype == np.int64
    assert len(os.listdir(osp.join(evaluated, 'preds'))) == 8
    assert len(os.listdir(osp.join(evaluated, 'overlays'))) == 8
    assert osp.isfile(osp.join(evaluated, 'per_image.npz'))


def test_miou_equals_torchmetrics_on_the_same_predictions(evaluated,
                                                          demo_data_root):
    from PIL import Image
    from torchmetrics.classification import MulticlassJaccardIndex

    from segreg.evaluation import PerImageStats, confusion_matrix
    gts, classes = _ground_truth(demo_data_root)
    preds, targets = [], []
    for name, gt in gts.items():
        stem = osp.splitext(name)[0]
        pred = np.array(Image.open(osp.join(evaluated, 'preds',
                                            stem + '.png')))
        assert pred.shape == gt.shape
        preds.append(pred.reshape(-1))
        targets.append(gt.reshape(-1))
    pred = np.concatenate(preds).astype(np.int64)
    gt = np.concatenate(targets).astype(np.int64)
    ref = MulticlassJaccardIndex(num_classes=len(classes), average='macro',
                                 ignore_index=255)(torch.from_numpy(pred),
                                                   torch.from_numpy(gt))
    with open(osp.join(evaluated, 'metrics.json')) as f:
        m = json.load(f)
    assert m['mIoU'] == pytest.approx(100 * float(ref), abs=1e-6)
    conf = np.load(osp.join(evaluated, 'confusion.npy'))
    np.testing.assert_array_equal(conf, confusion_matrix(pred, gt,
                                                         len(classes)))
    stats = PerImageStats.load(evaluated)
    assert sorted(stats.names.tolist()) == sorted(gts)
    np.testing.assert_array_equal(stats.totals()[0], np.diag(conf))


def test_checkpoint_of_another_model_is_refused(checkpoint, tmp_path,
                                                tools_on_path, capsys,
                                                demo_cfg_options):
    rc = _test([DEMO_CONFIG, checkpoint, '--out', str(tmp_path / 'o'),
                '--cfg-options', *demo_cfg_options(2, 2),
                'model.decode_head.num_classes=5'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'iter_2.pth' in err and 'conv_seg' in err
    other = str(tmp_path / 'linear.pth')
    torch.save({'state_dict': torch.nn.Linear(3, 2).state_dict()}, other)
    rc = _test([DEMO_CONFIG, other, '--out', str(tmp_path / 'o'),
                '--cfg-options', *demo_cfg_options(2, 2)])
    err = capsys.readouterr().err
    assert rc == 2 and 'linear.pth' in err and 'missing' in err
    assert not osp.exists(tmp_path / 'o' / 'metrics.json')


def test_bad_input_gives_clear_errors(checkpoint, tmp_path, tools_on_path,
                                      capsys):
    nowhere = str(tmp_path / 'nowhere')
    rc = _test([DEMO_CONFIG, checkpoint, '--out', str(tmp_path / 'o'),
                '--cfg-options',
                f'test_dataloader.dataset.data_root={nowhere}'])
    err = capsys.readouterr().err
    assert rc == 2 and nowhere in err and 'data/README.md' in err
    rc = _test([DEMO_CONFIG, checkpoint, '--cfg-options',
                'test_dataloader.batch_sise=2'])
    err = capsys.readouterr().err
    assert rc == 2 and 'batch_sise' in err and 'batch_size' in err
    rc = _test([DEMO_CONFIG, str(tmp_path / 'missing.pth')])
    err = capsys.readouterr().err
    assert rc == 2 and 'missing.pth' in err


def test_model_config_mistake_is_one_line(checkpoint, tmp_path,
                                          tools_on_path, capsys, monkeypatch,
                                          demo_cfg_options):
    """As in tools/train.py: checked before the runner and the data."""
    from segreg.engine.runner import SegregRunner

    def refuse(*args, **kwargs):
        raise AssertionError('the runner was built: the check came too late')
    monkeypatch.setattr(SegregRunner, '__init__', refuse)
    rc = _test([DEMO_CONFIG, checkpoint, '--out', str(tmp_path / 'o'),
                '--cfg-options', *demo_cfg_options(2, 2),
                'model.decode_head.type=DepthwiseSeparableASPPHed'])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(
        "error: model.decode_head.type = 'DepthwiseSeparableASPPHed' is not "
        'a registered model type (did you mean DepthwiseSeparableASPPHead'), \
        err


def test_mmcv_without_compiled_ops_is_named_in_two_lines(checkpoint,
                                                         tmp_path):
    import test_train  # the sitecustomize that hides mmcv's compiled ops
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'),
         DEMO_CONFIG, checkpoint, '--out', str(tmp_path / 'o')],
        cwd=REPO_ROOT, env=test_train.no_mmcv_ops_env(tmp_path),
        capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr[-3000:]
    assert lines[0].startswith('error: mmseg.datasets needs mmcv')
    assert "No module named 'mmcv._ext'" in lines[0]
    assert "'.[onedl]'" in lines[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gives_the_same_metrics(
        checkpoint, evaluated, tmp_path, demo_cfg_options):
    out = str(tmp_path / 'dist')
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get(
                   'PYTHONPATH', ''))
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={_free_port()}',
         osp.join(REPO_ROOT, 'tools', 'test.py'), DEMO_CONFIG, checkpoint,
         '--out', out, '--launcher', 'pytorch', '--cfg-options',
         *demo_cfg_options(2, 2)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(osp.join(out, 'metrics.json')) as f:
        dist = json.load(f)
    with open(osp.join(evaluated, 'metrics.json')) as f:
        single = json.load(f)
    assert dist['num_images'] == single['num_images'] == 8
    for k in ('aAcc', 'mIoU', 'mAcc', 'mFscore', 'per_class'):
        assert dist[k] == single[k], k
    np.testing.assert_array_equal(np.load(osp.join(out, 'confusion.npy')),
                                  np.load(osp.join(evaluated,
                                                   'confusion.npy')))
