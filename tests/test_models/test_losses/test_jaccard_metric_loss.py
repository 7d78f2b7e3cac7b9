"""JaccardMetricLoss (JML anchor): registry, oracle, ignore, stride, errors."""
from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

import segreg  # noqa: F401
from segreg.ops.soft_jaccard import jaccard_metric_loss, pixels_from_logits

C = 4


def _build(**kw):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return MODELS.build(dict(type='JaccardMetricLoss', **kw))


def _batch(seed=0, B=2, H=8, W=8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g)
    y = torch.randint(0, C, (B, H, W), generator=g)
    y[torch.rand(B, H, W, generator=g) < 0.2] = 255
    return x, y


def test_built_from_config_with_name_and_weight():
    loss = _build(loss_weight=0.75)
    assert loss.loss_name == 'loss_jml'
    assert 'loss' in _build(loss_name='loss_x').loss_name
    x, y = _batch()
    assert loss(x, y).item() == pytest.approx(
        0.75 * _build()(x, y).item(), rel=1e-6)


def test_hard_predictions_give_one_minus_torchmetrics_miou():
    x, y = _batch(1)
    pred = x.argmax(1)
    hard = torch.nn.functional.one_hot(pred, C).permute(0, 3, 1, 2) * 1e4
    got = _build(smooth=0.0)(hard.float(), y).item()
    iou = MulticlassJaccardIndex(num_classes=C, average='none',
                                 ignore_index=255)(pred, y)
    present = torch.zeros(C, dtype=torch.bool)
    present[y[y != 255].unique()] = True
    assert got == pytest.approx(1 - iou[present].mean().item(), abs=1e-6)


def test_ignore_index_and_weight_zero_agree():
    x, y = _batch(2)
    loss = _build()
    y2 = y.clone()
    y2[y == 255] = 0
    w = (y != 255).float()
    assert loss(x, y).item() == pytest.approx(
        loss(x, y2, weight=w).item(), rel=1e-6)
    y3 = y.clone()
    y3[y == 255] = 7  # another ignore label
    y3[y3 == 7] = 9
    assert loss(x, y3, ignore_index=9).item() == pytest.approx(
        loss(x, y).item(), rel=1e-6)


def test_sample_stride_uses_every_sth_pixel_at_a_random_phase():
    x, y = _batch(3, H=12, W=12)
    s = 2
    torch.manual_seed(11)
    got = _build(sample_stride=s)(x, y).item()
    torch.manual_seed(11)  # the same draw of the phase
    oy, ox = int(torch.randint(s, ())), int(torch.randint(s, ()))
    xs, ys = x[..., oy::s, ox::s], y[..., oy::s, ox::s]
    want = jaccard_metric_loss(*pixels_from_logits(
        xs, ys, torch.full(ys.shape, 4.0), 255)).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_soft_labels_are_accepted():
    x, _ = _batch(4)
    soft = torch.softmax(torch.randn_like(x), 1)
    v = _build(sample_stride=2)(x, soft)
    assert torch.isfinite(v) and 0 < v.item() < 1


def test_backward_reaches_the_logits():
    x, y = _batch(5)
    x.requires_grad_(True)
    _build()(x, y).backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize('kw, msg', [(dict(sample_stride=0), 'sample_stride'),
                                     (dict(smooth=-1.0), 'smooth')])
def test_bad_arguments_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _build(**kw)
