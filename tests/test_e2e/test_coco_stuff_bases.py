"""Each COCO-Stuff dataset base composes with the model and runtime bases.

A full config is a few lines over ``_base_`` fragments (a model, a dataset,
default_runtime, a schedule); mmengine refuses a key that two bases both
define. The stuff-only base once set ``custom_imports``, which
default_runtime.py also sets, so no config could inherit from it.
"""
from __future__ import annotations

import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

BASES = osp.join(REPO, 'configs', '_base_')
COMPOSED = """\
_base_ = [
    '{b}/models/deeplabv3_r50-d8.py', '{b}/datasets/{dataset}',
    '{b}/default_runtime.py', '{b}/schedules/schedule_80k.py'
]
"""


@pytest.mark.parametrize('dataset', ['coco-stuff164k.py', 'coco-stuff10k.py',
                                     'coco-stuff-stuffonly.py'])
def test_dataset_base_composes_with_runtime(dataset, tmp_path):
    path = tmp_path / 'composed.py'
    path.write_text(COMPOSED.format(b=BASES, dataset=dataset))
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['segreg']
    assert cfg.train_dataloader.dataset.type == cfg.dataset_type
    assert cfg.test_evaluator['type'] == 'SegregIoUMetric'
