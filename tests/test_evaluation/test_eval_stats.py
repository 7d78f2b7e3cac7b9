"""Intervals and tests of segreg.evaluation.stats."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from segreg.evaluation.functional import confusion_matrix, \
    metrics_from_confusion
from segreg.evaluation.per_image import PerImageStats
from segreg.evaluation.stats import (bootstrap_p_value, bootstrap_runs,
                                     bootstrap_weights, paired_t,
                                     percentile_interval, t_interval, welch_t)


def _stats(seed, n=10, C=5, quality=0.6):
    rng = np.random.default_rng(seed)
    grng = np.random.default_rng(99)
    gt = grng.integers(0, C - 1, size=(n, 8, 8))
    pred = np.where(rng.random(gt.shape) < quality, gt,
                    rng.integers(0, C, size=gt.shape))
    cells, counts = [], []
    for p, g in zip(pred, gt):
        flat = confusion_matrix(p, g, C).reshape(-1)
        nz = np.nonzero(flat)[0]
        cells.append(nz)
        counts.append(flat[nz])
    names = [f'i{k}' for k in range(n)]
    return (PerImageStats.from_sparse_confusions(names, cells, counts, C),
            confusion_matrix(pred, gt, C))


def test_t_interval_matches_scipy_and_needs_two_values():
    x = [50.0, 52.0, 49.0, 51.5]
    mean, half = t_interval(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x),
                            scale=sps.sem(x))
    assert mean == pytest.approx(np.mean(x))
    assert half == pytest.approx((hi - lo) / 2)
    assert math.isnan(t_interval([50.0])[1])


def test_paired_and_welch_t():
    a, b = [51.0, 53.0, 50.5], [50.0, 52.5, 49.0]
    d, half, p = paired_t(a, b)
    assert d == pytest.approx(1.0)
    assert p == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert half > 0
    d, half, p = paired_t([1.0, 2.0], [1.0, 2.0])
    assert (d, half, p) == (0.0, 0.0, 1.0)
    assert math.isnan(paired_t([1.0], [0.0])[2])
    d, half, p = welch_t(a, b)
    assert p == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)


def test_identity_resample_reproduces_the_full_metrics():
    st, conf = _stats(0)
    w = np.ones((3, st.num_images))
    boot = bootstrap_runs([st], w)
    ref = metrics_from_confusion(conf)
    for k in boot:
        np.testing.assert_allclose(boot[k], 100 * ref[k])


def test_bootstrap_is_seeded_and_the_interval_covers_the_estimate():
    st, conf = _stats(1, n=30)
    w1 = bootstrap_weights(30, 200, np.random.default_rng(0))
    w2 = bootstrap_weights(30, 200, np.random.default_rng(0))
    assert (w1 == w2).all() and (w1.sum(1) == 30).all()
    boot = bootstrap_runs([st], w1)
    lo, hi = percentile_interval(boot['mIoU'])
    assert lo < 100 * metrics_from_confusion(conf)['mIoU'] < hi


def test_paired_bootstrap_detects_a_better_arm():
    good, _ = _stats(2, n=40, quality=0.8)
    bad, _ = _stats(3, n=40, quality=0.4)
    w = bootstrap_weights(40, 300, np.random.default_rng(1))
    d = bootstrap_runs([good], w)['mIoU'] - bootstrap_runs([bad], w)['mIoU']
    assert percentile_interval(d)[0] > 0
    assert bootstrap_p_value(d) == pytest.approx(1 / 300)
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, -2.0])) == 1.0


def test_per_image_save_load_and_reorder(tmp_path):
    st, _ = _stats(4, n=6)
    st.save(str(tmp_path / 'per_image.npz'))
    back = PerImageStats.load(str(tmp_path))
    for k in ('names', 'ptr', 'cls', 'intersect', 'gt_area', 'pred_area'):
        np.testing.assert_array_equal(getattr(back, k), getattr(st, k))
    rev = back.reorder(back.names[::-1].tolist())
    assert rev.names.tolist() == back.names[::-1].tolist()
    for t1, t2 in zip(rev.totals(), back.totals()):
        np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(
        rev.sparse_rows('intersect').toarray(),
        back.sparse_rows('intersect').toarray()[::-1])
