"""The PixelMetricLoss base: numerical guards, empty shapes, the dual-step
protocol, and a new regularizer in one method (the recipe of
docs/losses.md)."""
from __future__ import annotations

import pytest
import torch

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.models.losses import ClassTerms, PixelMetricLoss

C = 4
#: every segreg pixel loss, each in a form that keeps state where it has any
PIXEL_LOSSES = [
    dict(type='DualIoULoss'),
    dict(type='DualFbetaLoss', beta=2.0),
    dict(type='DualIoULoss', solver='exact', num_classes=C),
    dict(type='DualIoULoss', solver='exact', normalize='mean',
         num_classes=C),
    dict(type='DualIoULoss', solver='dual_ascent', num_classes=C),
    dict(type='DualIoULoss', solver='dataset', num_classes=C),
    dict(type='DualIoULoss', solver='ratio', num_classes=C),
    dict(type='PrecisionAtRecallLoss', target_classes=[1], num_classes=C),
    dict(type='RecallAtPrecisionLoss', target_classes=[0, 2]),
    dict(type='ROCAUCLoss', target_classes=[3], num_anchors=3),
]
IDS = [d['type'] + ':' + str(d.get('solver', '')) +
       (':' + d['normalize'] if 'normalize' in d else '')
       for d in PIXEL_LOSSES]


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, C, 9, 8, generator=g)
    y = torch.randint(0, C, (2, 9, 8), generator=g)
    return x, y


def _state(loss):
    return {k: v.clone() for k, v in loss.state_dict().items()}


@pytest.mark.parametrize('cfg', PIXEL_LOSSES, ids=IDS)
@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_nonfinite_logits_raise_naming_the_loss_and_the_count(cfg, bad):
    loss = MODELS.build(cfg)
    loss.train()
    x, y = _data()
    x[0, 1, 2, 3] = bad
    x[1, 0, 0, :2] = bad  # 3 bad values, some not on the stride-4 grid
    before = _state(loss)
    with pytest.raises(FloatingPointError) as err:
        loss(x, y)
    msg = str(err.value)
    assert type(loss).__name__ in msg and loss.loss_name in msg
    assert '3 of 576 logits' in msg and "nonfinite='skip'" in msg
    for k, v in loss.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize('cfg', PIXEL_LOSSES, ids=IDS)
def test_skip_mode_returns_zero_counts_and_changes_no_state(cfg):
    loss = MODELS.build(dict(cfg, nonfinite='skip'))
    loss.train()
    x, y = _data()
    loss(x.requires_grad_(), y).backward()  # a good batch: state to protect
    loss.dual_step()
    before = _state(loss)
    x = x.detach().clone()
    x[0, :, 1, 1] = float('nan')
    x.requires_grad_()
    out = loss(x, y)
    out.backward()
    loss.dual_step()  # nothing pending: a no-op
    assert out.item() == 0.0 and loss.num_skipped == 1
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()
    for k, v in loss.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_dual_step_ignores_a_nonfinite_slack():
    """Finite logits whose loss overflows (float32 e^log_eps = inf) must
    not poison the persistent duals; nor may a non-finite slack."""
    loss = MODELS.build(dict(type='DualIoULoss', solver='dual_ascent',
                             num_classes=C, sample_stride=1))
    loss.train()
    x, y = _data()
    with torch.no_grad():
        loss.log_eps.fill_(1e3)  # eps = inf in float32
    assert not torch.isfinite(loss(x, y))
    mu = loss.mu.clone()
    loss.dual_step()
    assert torch.equal(loss.mu, mu) and loss.num_skipped == 1
    loss.defer_dual_step(torch.full((C, ), float('nan')),
                         torch.ones(C, dtype=torch.bool))
    loss.dual_step()
    assert torch.equal(loss.mu, mu) and loss.num_skipped == 2


def test_smeasure_loss_guard():
    from mmengine.structures import BaseDataElement
    loss = MODELS.build(dict(type='SMeasureLoss', num_classes=C,
                             num_samples=4, pool_size=(2, 2),
                             label_source='mask'))
    x, y = _data()
    samples = [BaseDataElement(metainfo=dict(sample_idx=i)) for i in (0, 1)]
    x[0, 0, 0, 0] = float('nan')
    with pytest.raises(FloatingPointError, match='SMeasureLoss .* 1 of'):
        loss(x, y, data_samples=samples)
    skip = MODELS.build(dict(type='SMeasureLoss', num_classes=C,
                             num_samples=4, pool_size=(2, 2),
                             label_source='mask', nonfinite='skip'))
    before = _state(skip)
    assert skip(x, y, data_samples=samples).item() == 0.0
    assert skip.num_skipped == 1
    for k, v in skip.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize('cfg', PIXEL_LOSSES, ids=IDS)
@pytest.mark.parametrize('stride', [1, 2, 3, 4, 7])
@pytest.mark.parametrize('shape', [(2, C, 0, 0), (2, C, 0, 5), (0, C, 6, 6),
                                   (1, C, 1, 1)])
def test_empty_and_tiny_shapes_at_every_stride(cfg, stride, shape):
    loss = MODELS.build(dict(cfg, sample_stride=stride))
    loss.train()
    x = torch.randn(*shape, requires_grad=True)
    y = torch.zeros(shape[:1] + shape[2:], dtype=torch.long)
    out = loss(x, y)
    out.backward()
    loss.dual_step()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    if x.numel() == 0:
        assert out.item() == 0.0
    for v in loss.state_dict().values():
        assert torch.isfinite(v.float()).all()


def test_without_the_hook_the_next_training_forward_takes_the_step():
    """The hook's dual_step() after the iteration, or the next training
    forward: the same duals; evaluation forwards never step."""
    hooked = MODELS.build(dict(type='ROCAUCLoss', target_classes=[1]))
    plain = MODELS.build(dict(type='ROCAUCLoss', target_classes=[1]))
    for it in range(3):
        x, y = _data(it)
        torch.manual_seed(it)
        hooked(x, y)
        hooked.dual_step()
        torch.manual_seed(it)
        plain(x, y)
    assert not torch.equal(hooked.dual, torch.ones_like(hooked.dual))
    plain.dual_step()
    torch.testing.assert_close(plain.dual, hooked.dual)
    plain.eval()
    before = plain.dual.clone()
    plain(*_data(5))
    plain(*_data(6))
    assert torch.equal(plain.dual, before)


def test_num_classes_is_checked():
    loss = MODELS.build(dict(type='DualIoULoss', num_classes=5))
    with pytest.raises(ValueError, match='num_classes=5 .* 4 classes'):
        loss(*_data())


class _SoftRecall(PixelMetricLoss):
    """The recipe: one method, per-class soft recall ``sum_{S+} p / n``."""

    def class_terms(self, batch):
        p = batch.logits.softmax(1)
        lab = batch.labels.clamp(max=p.shape[1] - 1)
        w = (batch.labels < p.shape[1]).to(p) if batch.weight is None \
            else batch.weight
        own = p.gather(1, lab.unsqueeze(1)).squeeze(1) * w
        zc = p.new_zeros(p.shape[1])
        n = zc.index_add(0, lab.reshape(-1), w.reshape(-1))
        hit = zc.index_add(0, lab.reshape(-1), own.reshape(-1))
        return ClassTerms(1 - hit / n.clamp(min=1e-12), n > 0)


def test_a_new_regularizer_is_one_method():
    """Masks, weights, stride, selection and the mean come from the base:
    the value equals a direct numpy-style computation on every pixel."""
    loss = _SoftRecall(sample_stride=1, classes=[0, 2, 3],
                       class_weight=[1.0, 1.0, 2.0, 1.0])
    x, y = _data(1)
    y[0, :3] = 255
    w = torch.rand(2, 9, 8)
    out = loss(x, y, weight=w)
    p = x.softmax(1)
    terms, weights = [], []
    for c, cw in ((0, 1.0), (2, 2.0), (3, 1.0)):
        m = (y == c).float() * w
        if m.sum() > 0:
            terms.append(cw * (1 - (p[:, c] * m).sum() / m.sum()))
            weights.append(cw)
    torch.testing.assert_close(out, sum(terms) / sum(weights))
