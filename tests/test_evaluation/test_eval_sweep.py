"""segreg.evaluation.report.sweep: the batch-size sweep's tables and figure."""
from __future__ import annotations

import json

import numpy as np
import pytest

from segreg.evaluation.report import CLASS_PIXELS_FILE, sweep
from segreg_fake_runs import CLASSES, make_study_root


def test_tables_intervals_and_drops(tmp_path):
    big = make_study_root(tmp_path, 'b8', {'ce': [0.5, 0.55, 0.6],
                                     'reg': [0.7, 0.72, 0.75]})
    small = make_study_root(tmp_path, 'b2', {'ce': [0.3, 0.35, 0.4],
                                       'reg': [0.65, 0.7, 0.72]})
    out = tmp_path / 'out'
    written = sweep.write_sweep([('8', big), ('2', small)], ['ce', 'reg'],
                                'ce', str(out))
    assert sorted(written) == sorted(
        str(out / f'batch_sweep.{e}') for e in ('md', 'html', 'json', 'png'))
    res = json.loads((out / 'batch_sweep.json').read_text())
    assert res['largest_batch'] == '8'
    assert res['metrics'] == ['mIoU', 'rare', 'frequent', 'aAcc']
    c8, c2 = res['cells']['8|reg'], res['cells']['2|reg']
    # the mean and interval are those of the per-seed values
    x = np.array(c8['mIoU']['values'])
    assert c8['mIoU']['mean'] == pytest.approx(x.mean())
    assert c8['mIoU']['half'] > 0 and c8['seeds'] == [0, 1, 2]
    # paired difference to the baseline at the same batch
    base = np.array(res['cells']['8|ce']['mIoU']['values'])
    assert c8['mIoU']['vs_baseline']['delta'] == pytest.approx(
        (x - base).mean())
    # drop from the largest batch: the baseline loses more than reg
    drop_ce = res['cells']['2|ce']['mIoU']['vs_largest_batch']['delta']
    drop_reg = c2['mIoU']['vs_largest_batch']['delta']
    assert drop_ce < drop_reg
    assert res['rare_classes'] == ['kite', 'bird', 'car']  # rarest first
    assert res['frequent_classes'][-1] == CLASSES[0]
    assert 'vs_largest_batch' not in c8['mIoU']
    md = (out / 'batch_sweep.md').read_text()
    assert '## mIoU: drop from batch 8' in md and '| reg |' in md
    assert 'Rarest third' in md and '## aAcc: mean' in md
    assert '](batch_sweep.png)' in md            # the figure, linked
    assert (out / 'batch_sweep.png').is_file()
    # the same document as self-contained HTML: the figure embedded
    html = (out / 'batch_sweep.html').read_text()
    assert html.count('data:image/png;base64,') == 1
    assert '<h2>frequent-third mIoU: vs ce</h2>' in html


def test_frequent_third_and_aacc_are_those_of_the_runs(tmp_path):
    """The frequent-third cell is the mean IoU of the most frequent
    classes of each run; aAcc the run's own."""
    import segreg.evaluation.report.runs as runs
    root = make_study_root(tmp_path, 'b8', {'ce': [0.5, 0.6], 'reg': [0.7, 0.8]})
    res = sweep.summarise([('8', root)], ['ce', 'reg'], 'ce')
    names = res['frequent_classes']
    for arm in ('ce', 'reg'):
        cell = res['cells'][f'8|{arm}']
        for seed in (0, 1):
            run = runs.load_run(arm, f'{root}/{arm}/seed{seed}', [])
            iou = run.class_iou()[[run.classes.index(c) for c in names]]
            assert cell['frequent']['values'][seed] == pytest.approx(
                float(np.nanmean(iou)))
            assert cell['aAcc']['values'][seed] == pytest.approx(
                run.value('aAcc'))


def test_without_training_pixel_counts_there_is_no_rare_column(tmp_path):
    root = make_study_root(tmp_path, 'b8', {'ce': [0.5, 0.6]})
    (tmp_path / 'b8' / CLASS_PIXELS_FILE).unlink()
    res = sweep.summarise([('8', root)], ['ce'], 'ce')
    assert res['metrics'] == ['mIoU', 'aAcc']
    assert res['rare_classes'] is None
    assert any(CLASS_PIXELS_FILE in n for n in res['notes'])


def test_batch_labels():
    """``B`` or ``BxR``; the figure joins single-process batches by a line
    and draws a ``BxR`` setting (R > 1) as its own point."""
    assert sweep.parse_batch_label('8') == (8, 1)
    assert sweep.parse_batch_label('2x4') == (2, 4)
    assert sweep.images_per_step('2x4') == 8
    with pytest.raises(ValueError):
        sweep.parse_batch_label('8b')
    assert [sweep.is_multi_process(lab) for lab in ('8', '2', '2x1', '2x4',
                                                    '4x2')
            ] == [False, False, False, True, True]
