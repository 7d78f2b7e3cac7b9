"""Every config loads, and its model builds and runs a forward pass on CPU."""
from __future__ import annotations

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p)


def _cpu_model_cfg(cfg: Config) -> dict:
    """The model config with SyncBN -> BN and no pretrained download."""
    def fix(node):
        if isinstance(node, dict):
            if node.get('type') == 'SyncBN':
                node['type'] = 'BN'
            for key in ('pretrained', 'init_cfg'):
                if key in node and node[key] is not None and (
                        key == 'pretrained' or 'checkpoint' in str(node[key])):
                    node[key] = None
            for v in node.values():
                fix(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                fix(v)
    model = cfg.model.to_dict()
    fix(model)
    return model


def test_configs_found():
    names = [osp.relpath(p, REPO) for p in CONFIGS]
    for family in ('deeplabv3', 'deeplabv3plus', 'demo'):
        assert any(n.startswith(f'configs/{family}/') for n in names), family


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds_and_runs(path):
    import segreg  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    assert 'segreg' in cfg.custom_imports['imports']
    num_classes = cfg.model.decode_head['num_classes'] if isinstance(
        cfg.model.decode_head, dict) else cfg.model.decode_head[-1][
            'num_classes']
    if 'coco-stuff164k' in path or 'coco-stuff10k' in path:
        assert num_classes == 171
    model = MODELS.build(_cpu_model_cfg(cfg))
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 80), mode='tensor')
    assert out.shape == (1, num_classes, 64, 80) or out.shape[:2] == (
        1, num_classes)
    assert torch.isfinite(out).all()
