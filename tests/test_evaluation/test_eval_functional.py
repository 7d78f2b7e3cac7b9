"""Metric math vs torchmetrics and mmseg; the class-inclusion rule.

Convention check (torchmetrics 1.9): with ``average='macro'`` torchmetrics'
MulticlassJaccardIndex, MulticlassFBetaScore, MulticlassF1Score,
MulticlassAccuracy, MulticlassPrecision and MulticlassRecall give a class
weight 0 only when ``tp + fp + fn == 0`` (absent from prediction and ground
truth) and score a zero denominator as ``zero_division=0``. That is exactly
segreg's rule, so the means are asserted *equal*. Per class
(``average='none'``) torchmetrics reports 0 where segreg reports NaN (the
excluded classes); those entries are compared after mapping NaN -> 0.
mmseg's IoUMetric agrees on mIoU but drops predicted-but-absent classes from
mFscore/mAcc, which the last tests demonstrate.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segreg.evaluation import (SegregIoUMetric, confusion_matrix,
                               metrics_from_confusion)
from segreg.evaluation.per_image import PerImageStats

tm = pytest.importorskip('torchmetrics.classification')

IGNORE = 255


def _tm_all(pred, gt, C):
    """torchmetrics' macro metrics (fractions), same ignore rule."""
    p, g = torch.as_tensor(pred).reshape(-1), torch.as_tensor(gt).reshape(-1)
    kw = dict(num_classes=C, ignore_index=IGNORE)
    return {
        'mIoU': tm.MulticlassJaccardIndex(average='macro', **kw)(p, g),
        'mFscore': tm.MulticlassF1Score(average='macro', **kw)(p, g),
        'mDice': tm.MulticlassF1Score(average='macro', **kw)(p, g),
        'mAcc': tm.MulticlassAccuracy(average='macro', **kw)(p, g),
        'mPrecision': tm.MulticlassPrecision(average='macro', **kw)(p, g),
        'mRecall': tm.MulticlassRecall(average='macro', **kw)(p, g),
        'aAcc': tm.MulticlassAccuracy(average='micro', **kw)(p, g),
        'IoU': tm.MulticlassJaccardIndex(average='none', **kw)(p, g),
        'Fscore': tm.MulticlassF1Score(average='none', **kw)(p, g),
        'Precision': tm.MulticlassPrecision(average='none', **kw)(p, g),
        'Recall': tm.MulticlassRecall(average='none', **kw)(p, g),
    }


def _tricky_maps(seed: int, C: int = 8, n: int = 3, size: int = 20):
    """GT uses classes 0-4; predictions use 0,1,2,5,6; class 7 nowhere.

    So 3 and 4 are never predicted, 5 and 6 predicted but absent from the
    ground truth, 7 absent from both; about 10% of pixels are ignored.
    """
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 5, size=(n, size, size))
    gt[rng.random(gt.shape) < 0.1] = IGNORE
    pred = rng.choice([0, 1, 2, 5, 6], size=gt.shape)
    agree = rng.random(gt.shape) < 0.5
    pred = np.where(agree & (gt < 3), gt, pred)
    return pred, gt


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_equals_torchmetrics_with_absent_and_never_predicted(seed):
    C = 8
    pred, gt = _tricky_maps(seed, C)
    ours = metrics_from_confusion(confusion_matrix(pred, gt, C, IGNORE))
    ref = _tm_all(pred, gt, C)
    for k in ('mIoU', 'mFscore', 'mDice', 'mAcc', 'mPrecision', 'mRecall',
              'aAcc'):
        assert ours[k] == pytest.approx(float(ref[k]), abs=1e-6), k
    for k in ('IoU', 'Fscore', 'Precision', 'Recall'):
        np.testing.assert_allclose(np.nan_to_num(ours['per_class'][k]),
                                   ref[k].numpy(), atol=1e-6, err_msg=k)
    pc = ours['per_class']
    # the rule: 7 excluded everywhere; 5, 6 (false positives only) and 3, 4
    # (never predicted) score 0 in every metric
    for k in pc:
        assert np.isnan(pc[k][7]), k
        for c in (3, 4, 5, 6):
            assert pc[k][c] == 0.0, (k, c)
        assert not np.isnan(pc[k][:7]).any(), k


@pytest.mark.parametrize('beta', [0.5, 2.0])
def test_fbeta_equals_torchmetrics(beta):
    C = 8
    pred, gt = _tricky_maps(5, C)
    ours = metrics_from_confusion(confusion_matrix(pred, gt, C), beta=beta)
    ref = tm.MulticlassFBetaScore(beta=beta, num_classes=C, average='macro',
                                  ignore_index=IGNORE)(
                                      torch.as_tensor(pred).reshape(-1),
                                      torch.as_tensor(gt).reshape(-1))
    assert ours['mFscore'] == pytest.approx(float(ref), abs=1e-6)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(C=st.integers(2, 9), seed=st.integers(0, 2**31 - 1),
       n_pred=st.integers(1, 9), n_gt=st.integers(1, 9))
def test_random_label_maps_equal_torchmetrics(C, seed, n_pred, n_gt):
    rng = np.random.default_rng(seed)
    # random subsets of classes used by prediction and ground truth
    pcls = rng.permutation(C)[:min(n_pred, C)]
    gcls = rng.permutation(C)[:min(n_gt, C)]
    gt = rng.choice(gcls, size=(2, 7, 9))
    gt[rng.random(gt.shape) < 0.15] = IGNORE
    pred = rng.choice(pcls, size=gt.shape)
    if (gt == IGNORE).all():
        return
    ours = metrics_from_confusion(confusion_matrix(pred, gt, C))
    ref = _tm_all(pred, gt, C)
    for k in ('mIoU', 'mFscore', 'mAcc', 'mPrecision', 'mRecall', 'aAcc'):
        assert ours[k] == pytest.approx(float(ref[k]), abs=1e-6), k
    assert ours['mDice'] == pytest.approx(ours['mFscore'], abs=1e-12)


def test_confusion_rows_are_ground_truth_and_bad_labels_are_refused():
    conf = confusion_matrix(np.array([1, 1, 0]), np.array([0, 1, 255]), 2)
    assert conf.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match='outside'):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match='ground truth'):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), 2)


# ---------------------------------------------------------------- mmengine
def _samples(pred, gt):
    return [{'pred_sem_seg': {'data': torch.as_tensor(p)[None]},
             'gt_sem_seg': {'data': torch.as_tensor(g)[None]},
             'img_path': f'/data/img_{i}.jpg'}
            for i, (p, g) in enumerate(zip(pred, gt))]


def _run_metric(metric, pred, gt, C, batch=2):
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(C)])
    samples = _samples(pred, gt)
    for i in range(0, len(samples), batch):
        metric.process({}, samples[i:i + batch])
    return metric.compute_metrics(metric.results)


def test_registered_metric_matches_functional_and_keeps_per_image(tmp_path):
    from mmseg.registry import METRICS
    C = 8
    pred, gt = _tricky_maps(3, C, n=5)
    metric = METRICS.build(dict(type='SegregIoUMetric', out_dir=str(tmp_path)))
    res = _run_metric(metric, pred, gt, C)
    conf = confusion_matrix(pred, gt, C)
    ref = metrics_from_confusion(conf)
    for k, v in res.items():
        assert v == pytest.approx(100 * ref[k], abs=1e-9), k
    np.testing.assert_array_equal(np.load(tmp_path / 'confusion.npy'), conf)
    stats = PerImageStats.load(str(tmp_path))
    assert stats.num_images == 5
    assert stats.names.tolist() == [f'img_{i}.jpg' for i in range(5)]
    tp, g, p = stats.totals()
    np.testing.assert_array_equal(tp, np.diag(conf))
    np.testing.assert_array_equal(g, conf.sum(1))
    np.testing.assert_array_equal(p, conf.sum(0))
    # per-image rows equal each image's own counts
    for i in range(5):
        ci = confusion_matrix(pred[i], gt[i], C)
        sl = slice(stats.ptr[i], stats.ptr[i + 1])
        present = np.nonzero(ci.sum(0) + ci.sum(1))[0]
        assert stats.cls[sl].tolist() == present.tolist()
        np.testing.assert_array_equal(stats.intersect[sl],
                                      np.diag(ci)[present])
        np.testing.assert_array_equal(
            stats.union[sl], (ci.sum(0) + ci.sum(1) - np.diag(ci))[present])
    with np.load(tmp_path / 'per_image.npz', allow_pickle=False) as z:
        assert z['intersect'].dtype == np.uint32
        assert set(z.files) >= {'names', 'ptr', 'cls', 'intersect', 'union'}


def test_results_split_over_ranks_give_the_same_metrics():
    """What collect_results does under DDP: results of ranks concatenated."""
    C = 8
    pred, gt = _tricky_maps(4, C, n=6)
    whole = _run_metric(SegregIoUMetric(), pred, gt, C)
    r0, r1 = SegregIoUMetric(), SegregIoUMetric()
    for m, sl in ((r0, slice(0, 3)), (r1, slice(3, 6))):
        m.dataset_meta = dict(classes=[f'c{i}' for i in range(C)])
        m.process({}, _samples(pred[sl], gt[sl]))
    import pickle
    gathered = pickle.loads(pickle.dumps(r0.results + r1.results))
    merged = r0.compute_metrics(gathered)
    assert merged == whole


def test_mmseg_iou_metric_agrees_on_miou_not_on_fscore():
    from mmseg.evaluation import IoUMetric
    C = 8
    pred, gt = _tricky_maps(6, C, n=4)
    ours = _run_metric(SegregIoUMetric(), pred, gt, C)
    mm = _run_metric(IoUMetric(iou_metrics=['mIoU', 'mFscore']), pred, gt, C)
    assert ours['mIoU'] == pytest.approx(mm['mIoU'], abs=0.006)  # mmseg rounds
    assert ours['aAcc'] == pytest.approx(mm['aAcc'], abs=0.006)
    # classes 5, 6 are predicted but absent from GT: mmseg's F/Acc skip them
    assert mm['mFscore'] > ours['mFscore'] + 1.0
    assert mm['mAcc'] > ours['mAcc'] + 1.0


def test_mmseg_agrees_on_fscore_when_no_false_positive_class():
    from mmseg.evaluation import IoUMetric
    C = 6
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, size=(3, 16, 16))
    pred = np.where(rng.random(gt.shape) < 0.6, gt,
                    rng.integers(0, 5, size=gt.shape))
    pred[:, :2, :2] = gt[:, :2, :2]
    ours = _run_metric(SegregIoUMetric(), pred, gt, C)
    mm = _run_metric(IoUMetric(iou_metrics=['mIoU', 'mFscore']), pred, gt, C)
    for k in ('mIoU', 'mFscore', 'mPrecision', 'mRecall', 'aAcc'):
        assert ours[k] == pytest.approx(mm[k], abs=0.006), k


@pytest.mark.parametrize('seed', range(4))
def test_mmseg_class_means_are_never_below_segreg(seed):
    """mmseg skips exactly the classes segreg scores 0 (documented)."""
    from mmseg.evaluation import IoUMetric
    C = 8
    pred, gt = _tricky_maps(10 + seed, C, n=2)
    ours = _run_metric(SegregIoUMetric(), pred, gt, C)
    mm = _run_metric(IoUMetric(iou_metrics=['mIoU', 'mFscore', 'mDice']),
                     pred, gt, C)
    for k in ('mAcc', 'mFscore', 'mPrecision', 'mRecall'):
        assert mm[k] >= ours[k] - 0.006, k
    assert mm['mIoU'] == pytest.approx(ours['mIoU'], abs=0.006)


def test_saved_predictions_round_trip_through_the_index(tmp_path):
    """pred_dir + gt_dir + out_dir: label PNGs equal the maps scored (255
    kept in the ground truth), the index names every image with its path
    and the dataset palette; PredictionIndex reads them back."""
    from segreg.evaluation.predictions import PredictionIndex
    C = 8
    pred, gt = _tricky_maps(5, C, n=4)
    metric = SegregIoUMetric(out_dir=str(tmp_path),
                             pred_dir=str(tmp_path / 'preds'),
                             gt_dir=str(tmp_path / 'gt'))
    palette = [[10 * i, 255 - 10 * i, 3 * i] for i in range(C)]
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(C)],
                               palette=palette)
    metric.process({}, _samples(pred, gt))
    metric.compute_metrics(metric.results)
    assert sorted(os.listdir(tmp_path / 'preds')) == \
        [f'img_{i}.png' for i in range(4)]
    idx = PredictionIndex.load(str(tmp_path))
    assert sorted(idx.images) == [f'img_{i}.jpg' for i in range(4)]
    assert idx.images['img_2.jpg']['img_path'] == '/data/img_2.jpg'
    assert idx.palette.tolist() == palette and idx.ignore_index == 255
    for i in range(4):
        np.testing.assert_array_equal(idx.pred(f'img_{i}.jpg'), pred[i])
        np.testing.assert_array_equal(idx.gt(f'img_{i}.jpg'), gt[i])
    assert idx.image('img_0.jpg') is None  # /data/img_0.jpg does not exist
    rgb = idx.colorize(gt[0])
    ys, xs = np.nonzero(gt[0] == 255)
    assert ys.size and (rgb[ys, xs] == 0).all()
    ys, xs = np.nonzero(gt[0] == 3)
    assert (rgb[ys, xs] == palette[3]).all()
