"""The benchmark scripts run end to end on tiny shapes and write their JSON
(smoke tests: the timings themselves are not asserted, they are noise)."""
from __future__ import annotations

import importlib.util
import json
import os.path as osp

from conftest import DEMO_CONFIG, REPO_ROOT


def _load(name):
    path = osp.join(REPO_ROOT, 'benchmarks', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'bench_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loss_cost_writes_every_loss_with_ratios(tmp_path, capsys):
    bench = _load('loss_cost')
    out = tmp_path / 'loss.json'
    losses = ['lovasz', 'dual_iou', 'dual_iou_full', 'dual_iou_exact',
              'dual_iou_da']
    assert bench.main(['--shape', '2', '5', '16', '16', '--device', 'cpu',
                       '--reps', '2', '--warmup', '1', '--losses', *losses,
                       '--model-config', DEMO_CONFIG, '--model-input', '2',
                       '32', '32', '--out', str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res['losses']) == {'ce', *losses}
    for name, r in res['losses'].items():
        assert r['median_ms'] > 0 and r['peak_mb'] >= 0
        assert r['ratio_vs_lovasz'] == r['median_ms'] / \
            res['losses']['lovasz']['median_ms']
    assert res['losses']['ce']['ratio_vs_ce'] == 1.0
    assert set(res['train_step']) == {'ce', *losses}
    assert 'dual_iou_exact' in capsys.readouterr().out


def test_attention_cost_runs_a_tiny_sweep(tmp_path):
    bench = _load('attention_cost')
    out = tmp_path / 'att.json'
    ret = bench.main(['--tokens', '64', '--landmarks', '16', '--heads', '2',
                      '--head-dims', '8', '--device', 'cpu', '--repeats',
                      '1', '--methods', 'sdpa', 'nystrom', '--out',
                      str(out)])
    res = json.loads(out.read_text())
    assert res == ret  # main returns what it wrote
    assert {r['method'] for r in res['rows']} == {'sdpa', 'nystrom'}
    assert set(res['speedup_over_sdpa']) == {'64'}
