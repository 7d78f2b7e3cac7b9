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
        make_fake_run(str(root / 'baseline' / f'seed{s}'), s, 0.5,
                      preds=s == 0)
        make_fake_run(str(root / 'dual' / f'seed{s}'), s, 0.7, dual=True,
                      preds=s == 0)
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
    from segreg.evaluation.report.figures import _curve_keys
    loss, val, other = _curve_keys(report.arms)
    assert 'decode.loss_dual_iou' in loss and val[:2] == ['aAcc', 'mIoU']
    assert other[0] == 'dual/lambda_mean'  # dual variables come first
    assert '![Summary metrics per arm](figures/summary.png)' in md


def test_html_is_self_contained(report):
    page = report.html
    assert page.count('src="data:image/png;base64,') == \
        len(report.figures) + len(report.tiles)
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
        n = len(report.figures) + len(report.tiles)
        # set by the page's own script once every <img> has decoded
        assert f'data-images-loaded="{n}/{n}"' in dom.stdout, \
            dom.stdout[:500]
        assert '<h2>Summary per arm</h2>' in dom.stdout
        assert '<h2>Qualitative comparison</h2>' in dom.stdout
        assert dom.stdout.count('<table class="grid">') == 1
        assert len(report.tiles) == 4 * len(report.grid) > 0
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


# ---------------------------------------------------------------- grid,
# confusion heatmaps, frequency bins
def test_report_has_grid_heatmaps_and_bins(report):
    md = report.markdown
    for heading in ('## Qualitative comparison', '## Confusion'):
        assert heading in md, heading
    assert 'mIoU by class frequency' in md.split('## Summary per arm')[1]
    assert '<strong>mIoU by class frequency.</strong>' in report.html
    assert 'rare third (3)' in report.summary_table()
    names = {osp.basename(f) for f in report.figures}
    assert {'confusion_baseline.png', 'confusion_delta_dual.png'} <= names
    # 12 images: 2 gains + 2 losses of dual (or fewer if it never loses),
    # 2 random; 4 tiles each (image, gt, baseline, dual), all real PNGs
    assert 3 <= len(report.grid) <= 6
    assert len(report.tiles) == 4 * len(report.grid)
    from PIL import Image
    for t in report.tiles:
        with open(t, 'rb') as f:
            assert f.read(8) == PNG_MAGIC
        with Image.open(t) as im:
            assert max(im.size) == 160 and im.getextrema() != ((0, 0),) * 3
    assert '![img_' in md and 'classes: ' in md
    with open(osp.join(report.out_dir, 'summary.json')) as f:
        js = json.load(f)
    assert len(js['grid']) == len(report.grid)
    assert js['frequency_bins']['arms']['dual'][0]['bin'] == 'rare third'


def test_frequency_bins_match_per_class_iou(report):
    """Each bin = mean of the per-class IoUs of its classes (oracle: the
    metrics.json of every run), thirds by test GT share without a file."""
    import numpy as np
    classes = list(CLASSES)
    # the last class never occurs (excluded, NaN); the rarest third starts
    # with it: sorted by GT share, 7 classes -> 3 / 2 / 2
    assert report.bin_classes[0] == ['kite', 'bird', 'car']
    assert [len(b) for b in report.bin_classes] == [3, 2, 2]
    assert 'test set' in report.bin_source
    for arm, a in report.arms.items():
        b = report.bins[arm]
        for j, names in enumerate(report.bin_classes):
            per_run = []
            for r in a.runs:
                vals = [r.metrics['per_class'][c]['IoU'] for c in names]
                vals = [v for v in vals if v is not None]
                per_run.append(sum(vals) / len(vals))
            assert b.per_run[:, j] == pytest.approx(per_run)
            assert b.t[j][0] == pytest.approx(np.mean(per_run))
            lo, hi = np.percentile(b.boot[j], [2.5, 97.5])
            assert lo <= b.t[j][0] + 5 and hi >= b.t[j][0] - 5
    # dual (quality 0.7) beats baseline (0.5) in every scored bin
    assert all(d > 0 for d, _, _ in report.bins['dual'].delta)
    assert classes  # the class list is the fake one


def test_frequency_bins_follow_training_counts(two_arms, tmp_path):
    """A check_dataset --json file of the training split decides the bins."""
    pixels = {c: 10 ** i for i, c in enumerate(CLASSES)}  # sky rarest
    path = tmp_path / 'train.json'
    path.write_text(json.dumps({'reports': [{'classes': [
        {'id': i, 'name': c, 'pixels': pixels[c]}
        for i, c in enumerate(CLASSES)]}]}))
    specs = [('baseline', str(two_arms / 'baseline' / 'seed0')),
             ('dual', str(two_arms / 'dual' / 'seed0'))]
    res = build_report(specs, str(tmp_path / 'rep'), bootstrap=20,
                       train_class_pixels=str(path))
    assert res.bin_classes == [['sky', 'grass', 'sea'], ['person', 'car'],
                               ['bird', 'kite']]
    assert 'training pixel share' in res.bin_source
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'sky': 3}))
    res = build_report(specs, str(tmp_path / 'rep2'), bootstrap=0,
                       train_class_pixels=str(bad))
    assert any('no training pixel count for 6 classes' in n
               for n in res.left_out)
    assert 'test set' in res.bin_source


def test_per_image_miou_matches_a_loop():
    import numpy as np
    from segreg.evaluation.functional import confusion_matrix
    from segreg.evaluation.per_image import PerImageStats
    from segreg.evaluation.report import per_image_miou
    from segreg_fake_runs import fake_predictions
    gt, pred = fake_predictions(6, 7, 0.6, seed=3)
    names, cells, counts, want = [], [], [], []
    for i, (g, p) in enumerate(zip(gt, pred)):
        conf = confusion_matrix(p, g, 7)
        nz = np.nonzero(conf.reshape(-1))[0]
        names.append(f'i{i}')
        cells.append(nz.astype(np.int32))
        counts.append(conf.reshape(-1)[nz])
        ious = []
        for c in range(7):
            gm, pm = (g == c), (p == c) & (g != 255)
            if gm.any() or pm.any():
                ious.append((gm & pm).sum() / (gm | pm).sum())
        want.append(np.mean(ious))
    stats = PerImageStats.from_sparse_confusions(names, cells, counts, 7)
    assert per_image_miou(stats) == pytest.approx(want)


def test_choose_images_follows_the_rule():
    import numpy as np
    from segreg.evaluation.report import choose_images
    names = [f'im{i}' for i in range(10)]
    base = np.full(10, 50.0)
    a = base.copy()
    a[[2, 7, 4]] += [30, 20, 10]          # gains: 2 (+30), 7 (+20), 4
    a[[5, 1]] -= [40, 5]                  # losses: 5 (-40), 1 (-5)
    b = base.copy()
    b[2] += 50                            # b's best gain is already chosen
    b[8] += 1
    b[9] = np.nan                         # image without classes: never
    got = choose_images(names, base, {'a': a, 'b': b}, per_direction=2,
                        random_count=2, max_images=12, seed=0)
    reasons = [(c.name, c.reason.split(' (')[0]) for c in got]
    assert reasons[:5] == [('im2', 'largest gain of a'),
                           ('im7', 'largest gain of a'),
                           ('im5', 'largest loss of a'),
                           ('im1', 'largest loss of a'),
                           ('im8', 'largest gain of b')]
    rest = [c.name for c in got[5:]]
    assert len(rest) == 2 and all(r.startswith('random') for _, r in
                                  reasons[5:])
    assert not set(rest) & {'im2', 'im7', 'im5', 'im1', 'im8'}
    # deterministic, and the cap holds
    again = choose_images(names, base, {'a': a, 'b': b}, seed=0)
    assert [c.name for c in again] == [c.name for c in got]
    assert len(choose_images(names, base, {'a': a, 'b': b},
                             max_images=3)) == 3


def test_grid_shows_the_constructed_gains_and_losses(tmp_path):
    """End to end: the arm is perfect on images 3 and 8 and all-wrong on
    image 5; the grid's first rows are those images, in that order."""
    import numpy as np

    def edit(gt, pred):
        pred = pred.copy()
        pred[3] = np.where(gt[3] == 255, 0, gt[3])
        pred[8] = np.where(gt[8] == 255, 0, gt[8])
        pred[5] = (np.where(gt[5] == 255, 0, gt[5]) + 1) % 6
        return pred

    base = make_fake_run(str(tmp_path / 'base' / 'seed0'), 0, 0.5,
                         preds=True)
    arm = make_fake_run(str(tmp_path / 'arm' / 'seed0'), 0, 0.5,
                        preds=True, edit=edit)
    res = build_report([('base', base), ('arm', arm)], str(tmp_path / 'r'),
                       bootstrap=0)
    shown = [g['image'] for g in res.grid]
    assert shown[:2] == ['img_003.jpg', 'img_008.jpg'] or \
        shown[:2] == ['img_008.jpg', 'img_003.jpg']
    assert shown[2] == 'img_005.jpg'
    assert res.grid[2]['miou']['arm'] == 0.0
    assert res.grid[0]['miou']['arm'] == 100.0
    # the legend lists exactly the classes in the GT or a shown prediction
    from PIL import Image
    want = set()
    for folder, sub in ((base, 'gt'), (base, 'preds'), (arm, 'preds')):
        with Image.open(osp.join(folder, 'eval', sub, 'img_005.png')) as im:
            want |= set(np.unique(np.asarray(im)).tolist()) - {255}
    row = [ln for ln in res.markdown.splitlines()
           if ln.startswith('| ![img_005')][0]
    listed = row.split('classes: ')[1].rstrip(' |').split(', ')
    assert listed == [CLASSES[c] for c in sorted(want)]


def test_many_classes_give_a_top_confusions_table(tmp_path):
    classes = tuple(f'c{i:02d}' for i in range(45))
    base = make_fake_run(str(tmp_path / 'b'), 0, 0.5, classes=classes,
                         num_images=4)
    arm = make_fake_run(str(tmp_path / 'a'), 1, 0.8, classes=classes,
                        num_images=4)
    res = build_report([('b', base), ('a', arm)], str(tmp_path / 'r'),
                       bootstrap=0)
    names = {osp.basename(f) for f in res.figures}
    assert not any(n.startswith('confusion') for n in names)
    part = res.markdown.split('## Confusion')[1].split('## ')[0]
    assert '45 classes: too many for a readable matrix' in part
    rows = [ln for ln in part.splitlines() if ln.startswith('| c')]
    assert 0 < len(rows) <= 20
    # every listed cell is off-diagonal and its share matches the matrix
    import numpy as np
    conf = np.load(osp.join(base, 'eval', 'confusion.npy')).astype(float)
    first = rows[0].strip('|').split('|')
    g, p = classes.index(first[0].strip()), classes.index(first[1].strip())
    assert g != p
    assert float(first[2]) == pytest.approx(100 * conf[g, p] /
                                            conf[g].sum(), abs=0.01)
