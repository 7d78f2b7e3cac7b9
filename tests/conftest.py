"""Shared fixtures: a small demo dataset generated once per test session."""
from __future__ import annotations

import os
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo',
                       'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')

# Tests run on 2 cores beside other processes: keep torch single-threaded
# unless the caller asked otherwise.
os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory) -> str:
    """A 16-train / 8-val demo dataset in the COCO-Stuff164k layout."""
    from segreg.datasets.demo_data import generate_demo_dataset
    root = str(tmp_path_factory.mktemp('demo_data'))
    generate_demo_dataset(root, num_train=16, num_val=8, seed=0,
                          progress=False)
    return root


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope='session')
def tools_on_path():
    """Make ``tools/`` importable (``import train``)."""
    path = osp.join(REPO_ROOT, 'tools')
    if path not in sys.path:
        sys.path.insert(0, path)
    yield path


def _demo_cfg_options(data_root: str, max_iters: int = 2,
                      interval: int = 2) -> list:
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={interval}',
        f'default_hooks.checkpoint.interval={interval}',
        'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=2',
        'default_hooks.logger.interval=1',
    ]


@pytest.fixture(scope='session')
def demo_cfg_options(demo_data_root):
    """Factory of --cfg-options that point the demo config at the test data.

    ``demo_cfg_options(max_iters=2, interval=2)`` returns a list of
    ``key=value`` strings (batch size 2, logging every iteration).
    """
    def make(max_iters: int = 2, interval: int = 2) -> list:
        return _demo_cfg_options(demo_data_root, max_iters, interval)
    return make


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.fixture(autouse=True)
def _fresh_mmengine_instances():
    """Forget mmengine's named singletons (visualizers, loggers) after a test.

    A Runner names its visualizer and logger ``<config>_<timestamp>``; two
    runners built in the same second in one process (as tests do) would
    share them, and the second run's scalars would land in the first run's
    work dir.
    """
    yield
    from mmengine.logging import MMLogger
    from mmengine.visualization import Visualizer
    for cls in (Visualizer, *_subclasses(Visualizer)):
        cls._instance_dict.clear()
    for name in list(MMLogger._instance_dict):
        if name != 'mmengine':
            MMLogger._instance_dict.pop(name)
