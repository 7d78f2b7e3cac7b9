"""The comparison report from fake runs; the HTML in a headless browser."""
from __future__ import annotations

import json
import os
import os.path as osp
import re
import shutil
import subprocess
import tempfile

import pytest

from segreg.evaluation.report import build_report, parse_run_specs
from segreg_fake_runs import CLASSES, make_fake_run

CHROMIUM = '/usr/bin/chromium'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def two_arms(tmp_path_factory):
    """baseline: 3 seeds, quality 0.5; dual: 3 seeds, quality 0.7."""
    root = tmp_path_factory.mktemp('runs')
    for s in range(3):
        make_fake_run(str(root / 'baseline' / f'seed{s}'), s, 0.5)
        make_fake_run(str(root / 'dual' / f'seed{s}'), s, 0.7, dual=True)
    return root


@pytest.fixture(scope='module')
def report(two_arms, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('report'))
    specs = parse_run_specs([f'baseline={two_arms}/baseline/seed*',
                             f'dual={two_arms}/dual/seed*'])
    return build_report(specs, out, baseline='baseline', bootstrap=200)


def _is_png(path):
    with open(path, 'rb') as f:
        head = f.read(8)
    return head == PNG_MAGIC and os.path.getsize(path) > 2000


def test_report_files_and_figures_exist_and_are_pngs(report):
    out = report.out_dir
    for name in ('report.md', 'report.html', 'summary.json'):
        assert osp.getsize(osp.join(out, name)) > 500, name
    names = {osp.basename(f) for f in report.figures}
    assert {'summary.png', 'class_delta_dual.png', 'curves_loss.png',
            'curves_val.png', 'curves_other.png'} <= names
    for f in report.figures:
        assert _is_png(f), f
        from PIL import Image
        with Image.open(f) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    assert len(os.listdir(osp.join(out, 'configs'))) == 6


def test_report_numbers(report):
    assert report.baseline == 'baseline'
    base, dual = report.arms['baseline'], report.arms['dual']
    assert len(base.runs) == 3 and [r.seed for r in base.runs] == [0, 1, 2]
    mean, half = dual.t['mIoU']
    assert half > 0 and not any('only 1 run' in n for n in report.left_out)
    d = next(x for x in report.deltas if x.metric == 'mIoU')
    assert d.test == 'paired t (seeds)'
    assert d.delta == pytest.approx(mean - base.t['mIoU'][0])
    assert d.delta > 5 and d.boot_ci[0] > 0 and d.t_p < 0.05
    lo, hi = d.boot_ci
    assert lo < d.delta < hi
    with open(osp.join(report.out_dir, 'summary.json')) as f:
        js = json.load(f)
    assert js['arms']['dual']['metrics']['mIoU']['mean'] == pytest.approx(
        mean)
    assert js['left_out'] == report.left_out


def test_report_text_has_sections_rare_first_and_convention(report):
    md = report.markdown
    for heading in ('## Metric convention', '## Summary per arm',
                    '## Difference vs baseline', '## Per-class IoU',
                    '## Training curves', '## Configs and commands',
                    '## Left out'):
        assert heading in md, heading
    assert 'absent from both' in md
    # per-class table: rarest first; the never-occurring class is first
    table = md.split('## Per-class IoU')[1]
    order = [c for c in re.findall(r'^\| ([a-z]+) \|', table, re.M)
             if c in CLASSES]
    assert order[:3] == ['kite', 'bird', 'car']
    assert 'python tools/train.py configs/fake.py --seed 1' in md
    from segreg.evaluation.report import _curve_keys
    loss, val, other = _curve_keys(report.arms)
    assert 'decode.loss_dual_iou' in loss and val[:2] == ['aAcc', 'mIoU']
    assert other[0] == 'dual/lambda_mean'  # dual variables come first
    assert '![Summary metrics per arm](figures/summary.png)' in md


def test_html_is_self_contained(report):
    page = report.html
    assert page.count('src="data:image/png;base64,') == len(report.figures)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert '<link' not in page


def test_bad_input_is_left_out_with_reasons(two_arms, tmp_path):
    root = tmp_path
    make_fake_run(str(root / 'old'), 0, 0.5, schema_version=None)
    make_fake_run(str(root / 'other_classes'), 0, 0.5,
                  classes=CLASSES[:-1] + ('frisbee', ))
    make_fake_run(str(root / 'nolog'), 7, 0.6, scalars=False)
    make_fake_run(str(root / 'noimg'), 8, 0.6, with_per_image=False)
    specs = [('baseline', str(two_arms / 'baseline' / f'seed{s}'))
             for s in range(3)]
    specs += [('old', str(root / 'old')),
              ('odd', str(root / 'other_classes')),
              ('single', str(root / 'nolog')),
              ('noimg', str(root / 'noimg')),
              ('ghost', str(root / 'does_not_exist'))]
    res = build_report(specs, str(root / 'rep'), bootstrap=50)
    notes = '\n'.join(res.left_out)
    assert 'schema' in notes and 'tools/test.py' in notes
    assert 'frisbee' in notes and 'classes differ' in notes
    assert 'no training log' in notes
    assert 'only 1 run' in notes and 'no CI over seeds' in notes
    assert 'per_image.npz' in notes
    assert 'does_not_exist' in notes
    assert set(res.arms) == {'baseline', 'single', 'noimg'}
    assert res.arms['single'].boot is not None
    assert res.arms['noimg'].boot is None
    assert all(_is_png(f) for f in res.figures)
    md = open(osp.join(res.out_dir, 'report.md')).read()
    assert 'frisbee' in md.split('## Left out')[1]


def test_seeds_unknown_are_paired_by_order(tmp_path):
    for s in range(2):
        make_fake_run(str(tmp_path / f'a{s}'), s, 0.5, record=False)
        make_fake_run(str(tmp_path / f'b{s}'), s + 10, 0.6, record=False)
        for d in (f'a{s}', f'b{s}'):
            os.remove(tmp_path / d / 'fake.py')
    specs = [('a', str(tmp_path / f'a{s}')) for s in range(2)]
    specs += [('b', str(tmp_path / f'b{s}')) for s in range(2)]
    res = build_report(specs, str(tmp_path / 'rep'), bootstrap=0)
    d = next(x for x in res.deltas if x.metric == 'mIoU')
    assert d.test == 'paired t (by order)'
    assert any('in the order given' in n for n in res.left_out)
    assert res.arms['a'].boot is None


def test_html_renders_in_headless_chromium(report):
    if not osp.exists(CHROMIUM):
        pytest.skip(f'{CHROMIUM} not installed (Debian package "chromium"; '
                    f'tools/ci/install_system_deps.sh installs it)')
    profile = tempfile.mkdtemp(prefix='segreg-chromium-')
    flags = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
             '--disable-quic', '--no-first-run',
             '--disable-background-networking',
             '--disable-component-update', '--disable-sync',
             f'--user-data-dir={profile}', '--enable-logging=stderr',
             '--v=0']
    url = 'file://' + osp.abspath(osp.join(report.out_dir, 'report.html'))
    try:
        dom = subprocess.run(flags + ['--dump-dom', url], capture_output=True,
                             text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        n = len(report.figures)
        # set by the page's own script once every <img> has decoded
        assert f'data-images-loaded="{n}/{n}"' in dom.stdout, \
            dom.stdout[:500]
        assert '<h2>Summary per arm</h2>' in dom.stdout
        shot = osp.join(profile, 'shot.png')
        res = subprocess.run(flags + [f'--screenshot={shot}',
                                      '--window-size=1200,1600', url],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert _is_png(shot)
        console = [ln for ln in (dom.stderr + res.stderr).splitlines()
                   if 'CONSOLE' in ln or 'Uncaught' in ln]
        assert not console, console
    finally:
        shutil.rmtree(profile, ignore_errors=True)
