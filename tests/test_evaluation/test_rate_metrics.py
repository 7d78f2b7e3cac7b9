"""P@R, R@P and ROC-AUC from per-pixel scores against torchmetrics (which
computes in float32: agreement to 1e-6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    binary_auroc, binary_precision_at_fixed_recall,
    binary_recall_at_fixed_precision)

from segreg.evaluation.rate_metrics import (SegregRateMetric,
                                            precision_at_recall,
                                            recall_at_precision, roc_auc)


@pytest.mark.parametrize('seed', range(12))
def test_against_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    y = rng.random(n) < rng.uniform(0.05, 0.6)
    y[0], y[1] = True, False
    s = rng.normal(size=n) + 1.5 * y
    if seed % 3 == 0:  # many ties
        s = np.round(s * 2) / 2
    st, yt = torch.tensor(s, dtype=torch.float64), torch.tensor(y).long()
    assert roc_auc(s, y) == pytest.approx(binary_auroc(st, yt).item(),
                                          abs=1e-6)
    # levels that no tp / n ratio hits exactly: torchmetrics compares float32
    # ratios, so a ratio equal to the level may fall on either side there
    for r in (0.0, 0.313, 0.777, 1.0):
        ref, _ = binary_precision_at_fixed_recall(st, yt, min_recall=r)
        assert precision_at_recall(s, y, r) == pytest.approx(ref.item(),
                                                             abs=1e-6)
    for p in (0.213, 0.557, 0.871, 1.0):
        ref, _ = binary_recall_at_fixed_precision(st, yt, min_precision=p)
        assert recall_at_precision(s, y, p) == pytest.approx(ref.item(),
                                                             abs=1e-6)


def test_degenerate_cases():
    s = np.array([0.1, 0.5])
    assert np.isnan(roc_auc(s, [False, False]))
    assert np.isnan(roc_auc(s, [True, True]))
    assert np.isnan(precision_at_recall(s, [False, False], 0.5))
    assert roc_auc(s, [False, True]) == 1.0
    assert roc_auc(s, [True, False]) == 0.0


def test_metric_from_data_samples():
    """SegregRateMetric: the softmax probability of each target class at
    the valid pixels, in percent, ignore_index left out."""
    g = torch.Generator().manual_seed(0)
    metric = SegregRateMetric(target_classes=[1, 2], recall=0.5,
                              precision=0.7)
    metric.dataset_meta = dict(classes=['a', 'b', 'c'])
    all_p, all_y = [], []
    for _ in range(3):
        logits = torch.randn(3, 5, 6, generator=g)
        gt = torch.randint(0, 3, (1, 5, 6), generator=g)
        gt[0, 0] = 255
        logits[1] += 2.0 * (gt[0] == 1)
        metric.process({}, [dict(seg_logits=dict(data=logits),
                                 gt_sem_seg=dict(data=gt))])
        valid = gt[0] != 255
        all_p.append(logits.softmax(0)[:, valid])
        all_y.append(gt[0][valid])
    out = metric.evaluate(3)
    p, y = torch.cat(all_p, 1), torch.cat(all_y)
    for k, name in ((1, 'b'), (2, 'c')):
        auc = binary_auroc(p[k], (y == k).long()).item() * 100
        assert out[f'rate/{name}_AUC'] == pytest.approx(auc, abs=1e-4)
        rap, _ = binary_recall_at_fixed_precision(p[k], (y == k).long(),
                                                  min_precision=0.7)
        assert out[f'rate/{name}_R@P0.7'] == pytest.approx(
            100 * rap.item(), abs=1e-4)
    rates = metric.last_rates['b']
    assert rates['num_positive_pixels'] == int((y == 1).sum())
    assert rates['precision_at_recall']['recall'] == 0.5


def test_summarize_rate_runs(tmp_path):
    import json
    from segreg.evaluation.rate_metrics import summarize_rate_runs
    vals = {'ce': [10.0, 12.0, 14.0], 'x': [13.0, 14.0, 18.0]}
    for arm, v in vals.items():
        for s, auc in enumerate(v):
            d = tmp_path / arm / f'seed{s}' / 'eval'
            d.mkdir(parents=True)
            rates = {'t': dict(precision_at_recall=dict(value=auc / 2),
                               recall_at_precision=dict(value=0.0),
                               roc_auc=auc)}
            (d / 'metrics.json').write_text(json.dumps(
                dict(mIoU=50.0 + s, rate_metrics=rates)))
    table = summarize_rate_runs(str(tmp_path), ['ce', 'x'], [0, 1, 2])
    rows = table.splitlines()
    assert rows[2].startswith('| ce | 6.00 ± ') and '| 12.00 ± 4.97 |' in \
        rows[2]
    # paired deltas 3, 2, 4: mean +3.00, t half-width 2.48, t = 5.2 (2 df)
    assert '15.00 ± ' in rows[3] and '(+3.00 [+0.52, +5.48], p=0.035)' in \
        rows[3]
