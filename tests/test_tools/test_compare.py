"""tools/compare.py: the command line over fake runs."""
from __future__ import annotations

import json
import os.path as osp
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tests', 'test_evaluation'))
from segreg_fake_runs import make_fake_run  # noqa: E402


def _compare(argv):
    import compare  # tools/compare.py
    return compare.main(argv)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('cmp_runs')
    for s in (0, 1):
        make_fake_run(str(root / 'ce' / f'seed{s}'), s, 0.5)
        make_fake_run(str(root / 'ce_dual' / f'seed{s}'), s, 0.6, dual=True)
    return root


def test_cli_builds_report_from_globs_and_metrics_folders(
        runs, tmp_path, tools_on_path, capsys):
    out = str(tmp_path / 'rep')
    # one arm by glob over work dirs, the other by its metrics folders
    rc = _compare(['--run', f'ce={runs}/ce/seed*',
                   '--run', f'ce+dual={runs}/ce_dual/seed0/eval',
                   '--run', f'ce+dual={runs}/ce_dual/seed1/eval',
                   '--baseline', 'ce', '--out', out, '--bootstrap', '100'])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert 'ce+dual' in captured.out and 'report.html' in captured.out
    with open(osp.join(out, 'summary.json')) as f:
        js = json.load(f)
    assert js['baseline'] == 'ce'
    assert js['arms']['ce+dual']['seeds'] == [0, 1]
    # metrics folder -> work dir through the checkpoint path: curves found
    assert not any('no training log' in n for n in js['left_out'])
    assert 'figures/curves_loss.png' in js['figures']
    md = open(osp.join(out, 'report.md')).read()
    assert '## Difference vs ce' in md


def test_cli_errors(runs, tmp_path, tools_on_path, capsys):
    assert _compare(['--run', 'nolabel', '--out', str(tmp_path)]) == 2
    assert 'NAME=DIR' in capsys.readouterr().err
    assert _compare(['--run', f'a={runs}/ce/seed0', '--baseline', 'b',
                     '--out', str(tmp_path)]) == 2
    assert "'b'" in capsys.readouterr().err
    rc = _compare(['--run', f'a={tmp_path}/nothing*', '--out',
                   str(tmp_path / 'r')])
    err = capsys.readouterr().err
    assert rc == 2 and 'no usable run' in err and 'nothing*' in err
