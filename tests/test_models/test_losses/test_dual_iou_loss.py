"""DualIoULoss / DualFbetaLoss: values against an LP solver, the mmseg loss
contract, masking, degenerate batches, the initialisation gradient (every
class LP infeasible) and the learnable scales."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.models.losses import HingeBoundLoss
from segreg.ops import softmax_log_odds as class_scores

from _lp_oracle import lp_value



#: these tests check the paper's per-batch LP on every pixel, not the
#: defaults (direct bound, stride 4; tests/.../test_dual_iou_variants.py)
EXACT = dict(solver='exact', sample_stride=1)


def build(**kw):
    cfg = dict(type='DualIoULoss', num_classes=kw.pop('num_classes', 3),
               **EXACT)
    cfg.update(kw)
    return MODELS.build(cfg)


def scaled(loss, scale: float):
    """``loss`` with every class scale ``w_c`` set to ``scale``."""
    with torch.no_grad():
        loss.log_scale.fill_(math.log(scale))
    return loss


# --------------------------------------------------------------------------
def test_build_from_config_and_contract():
    iou = MODELS.build(dict(type='DualIoULoss', **EXACT, num_classes=4))
    fb = MODELS.build(dict(type='DualFbetaLoss', **EXACT, num_classes=4,
                           beta=2.0, loss_weight=0.5))
    assert iou.loss_name == 'loss_dual_iou'
    assert fb.loss_name == 'loss_dual_fbeta' and fb.beta == 2.0
    assert MODELS.build(dict(type='DualIoULoss', **EXACT, num_classes=4,
                             loss_name='loss_x')).loss_name == 'loss_x'
    logits = torch.randn(2, 4, 5, 6)
    label = torch.randint(0, 4, (2, 5, 6))
    out = fb(logits, label, weight=None, ignore_index=255)
    assert out.dim() == 0
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='DualIoULoss', solver='exact'))
    # the default (direct bound) learns no scale and needs no num_classes
    default = MODELS.build(dict(type='DualIoULoss'))
    assert isinstance(default, HingeBoundLoss) and default.sample_stride == 4
    assert list(default.parameters()) == []
    assert torch.isfinite(default(logits, label))
    with pytest.raises(ValueError):
        build(normalize='nope')


@pytest.mark.parametrize('metric,beta', [('iou', 1.0), ('fbeta', 2.0)])
def test_value_matches_lp_solver(metric, beta):
    """Feasible classes: the term is 1 - bound(V) with V the LP optimum."""
    torch.manual_seed(1)
    checked = 0
    for _ in range(25):
        C = 3
        logits = torch.randn(1, C, 3, 4, dtype=torch.float64) * 3
        label = torch.randint(0, C, (1, 3, 4))
        kw = dict(num_classes=C)
        loss = scaled(MODELS.build(dict(type='DualIoULoss', **EXACT, **kw))
                      if metric == 'iou' else MODELS.build(
                          dict(type='DualFbetaLoss', **EXACT, beta=beta,
                               **kw)), 4.0)
        loss(logits, label)
        st_ = loss.last_stats
        s = class_scores(logits.float()).double() * 4.0
        for c in range(C):
            pos = s[0, c][label[0] == c].numpy()
            neg = s[0, c][label[0] != c].numpy()
            if len(pos) == 0:
                continue
            value, _ = lp_value(pos, neg, b2=beta**2)
            if not math.isfinite(value):
                assert not st_['feasible'][c]
                continue
            checked += 1
            assert st_['feasible'][c]
            assert st_['value'][c].item() == pytest.approx(value, rel=1e-4)
            bound = 1 / value if metric == 'iou' else (1 + beta**2) / (
                1 + value)
            assert st_['term'][c].item() == pytest.approx(1 - bound,
                                                          rel=1e-4, abs=1e-5)
    assert checked > 5


def test_gradcheck_float64():
    torch.manual_seed(3)
    loss = scaled(build(num_classes=3), 6.0)
    logits = torch.randn(1, 3, 3, 3, dtype=torch.float64) * 2
    logits.requires_grad_()
    label = torch.randint(0, 3, (1, 3, 3))

    def fn(x):
        return loss(x, label)
    assert torch.autograd.gradcheck(fn, (logits, ), eps=1e-6, atol=1e-5)


# --------------------------------------------------------------------------
@pytest.mark.parametrize('typ', ['DualIoULoss', 'DualFbetaLoss'])
def test_ignored_and_zero_weight_pixels_change_nothing(typ):
    torch.manual_seed(0)
    loss = MODELS.build(dict(type=typ, **EXACT, num_classes=4))
    logits = torch.randn(2, 4, 6, 6)
    label = torch.randint(0, 4, (2, 6, 6))
    mask = torch.rand(2, 6, 6) < 0.3
    other = logits.clone()
    other[mask.unsqueeze(1).expand_as(other)] = 50.0  # garbage there
    a = logits.clone().requires_grad_()
    b = other.clone().requires_grad_()
    la = loss(a, torch.where(mask, torch.full_like(label, 255), label),
              ignore_index=255)
    lb = loss(b, torch.where(mask, torch.full_like(label, 255), label),
              ignore_index=255)
    la.backward()
    lb.backward()
    assert torch.allclose(la, lb, atol=1e-6)
    keep = ~mask.unsqueeze(1).expand_as(a)
    assert torch.allclose(a.grad[keep], b.grad[keep], atol=1e-6)
    assert (b.grad[~keep] == 0).all()
    # weight 0 is the same as ignore_index
    c = other.clone().requires_grad_()
    lc = loss(c, torch.where(mask, (label + 1) % 4, label),
              weight=(~mask).float(), ignore_index=255)
    lc.backward()
    assert torch.allclose(la, lc, atol=1e-6)
    assert torch.allclose(a.grad[keep], c.grad[keep], atol=1e-6)
    assert (c.grad[~keep] == 0).all()


@pytest.mark.parametrize('classes', ['present', 'all'])
def test_degenerate_batches_are_finite(classes):
    loss = build(num_classes=4, classes=classes)
    cases = {
        'absent class': (torch.randn(2, 4, 5, 5),
                         torch.randint(0, 3, (2, 5, 5))),
        'all ignored': (torch.randn(2, 4, 5, 5),
                        torch.full((2, 5, 5), 255)),
        'empty': (torch.randn(0, 4, 5, 5), torch.zeros(0, 5, 5).long()),
        'saturated': (torch.randn(2, 4, 5, 5).sign() * 1e4,
                      torch.randint(0, 4, (2, 5, 5))),
        'one pixel': (torch.randn(1, 4, 1, 1), torch.tensor([[[2]]])),
    }
    for name, (logits, label) in cases.items():
        x = logits.clone().requires_grad_()
        loss.zero_grad()
        out = loss(x, label, ignore_index=255)
        out.backward()
        assert torch.isfinite(out), name
        assert torch.isfinite(x.grad).all(), name
        assert torch.isfinite(loss.log_scale.grad).all(), name


def test_bf16_autocast_cpu():
    loss = build(num_classes=4)
    conv = torch.nn.Conv2d(3, 4, 1)
    img = torch.randn(2, 3, 8, 8)
    label = torch.randint(0, 4, (2, 8, 8))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = conv(img)
        assert logits.dtype == torch.bfloat16
        out = loss(logits, label)
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------
def _tiny_head(loss_cfg):
    from mmseg.models.decode_heads import FCNHead
    torch.manual_seed(0)
    return FCNHead(in_channels=8, channels=8, num_convs=1, num_classes=5,
                   concat_input=False, norm_cfg=None, loss_decode=[
                       dict(type='CrossEntropyLoss', loss_weight=1.0,
                            avg_non_ignore=True), loss_cfg])


def _samples(labels):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for lab in labels:
        ds = SegDataSample()
        ds.gt_sem_seg = PixelData(data=lab[None])
        ds.set_metainfo(dict(img_shape=lab.shape, pad_shape=lab.shape))
        out.append(ds)
    return out


def test_in_decode_head_beside_cross_entropy_and_optimizer():
    from mmengine.optim import build_optim_wrapper
    head = _tiny_head(dict(type='DualIoULoss', num_classes=5,
                           loss_weight=0.5, **EXACT))
    feats = (torch.randn(2, 8, 8, 8), )
    labels = torch.randint(0, 5, (2, 16, 16))
    losses = head.loss(feats, _samples(labels), train_cfg={})
    assert set(losses) >= {'loss_ce', 'loss_dual_iou', 'acc_seg'}
    assert torch.isfinite(losses['loss_dual_iou'])
    # the loss's learnable scales are model parameters: the runner's
    # optimizer (built from the model) updates them
    names = [n for n, _ in head.named_parameters()]
    assert 'loss_decode.1.log_scale' in names
    wrapper = build_optim_wrapper(head, dict(
        optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
        paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.)})))
    optimized = {id(p) for g in wrapper.optimizer.param_groups
                 for p in g['params']}
    assert id(head.loss_decode[1].log_scale) in optimized


def test_nonzero_gradient_at_initialisation():
    """At init every class LP is infeasible; the direct bound (the default
    solver, and the exact solver's fallback) trains every present class."""
    feats = (torch.randn(2, 8, 8, 8), )
    labels = torch.randint(0, 5, (2, 16, 16))
    for cfg in (dict(type='DualIoULoss', num_classes=5),
                dict(type='DualIoULoss', num_classes=5, **EXACT)):
        head = _tiny_head(cfg)
        losses = head.loss(feats, _samples(labels), train_cfg={})
        stats = head.loss_decode[1].last_stats
        assert not stats.get('feasible', torch.zeros(1)).any()
        losses['loss_dual_iou'].backward()
        # every present class gets gradient from the regularizer
        g = head.conv_seg.weight.grad.abs().sum(1).flatten()
        assert (g > 0).all()


def test_present_vs_all_classes():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 6, 6)
    logits[:, 2] += 3.0  # class 2 is predicted everywhere but absent
    label = torch.randint(0, 2, (1, 6, 6))
    lp = build(num_classes=3, classes='present')(logits, label)
    la = build(num_classes=3, classes='all')(logits, label)
    assert not torch.allclose(lp, la)
    # only the absent class's term: 'present' has nothing to average,
    # 'all' has the smoothed bound fp / (1 + fp) > 0 and pushes class 2 down
    only2 = dict(num_classes=3, class_weight=[0.0, 0.0, 1.0])
    xp = logits.clone().requires_grad_()
    xa = logits.clone().requires_grad_()
    out_p = build(classes='present', **only2)(xp, label)
    out_a = build(classes='all', **only2)(xa, label)
    out_p.backward()
    out_a.backward()
    assert out_p.item() == 0.0 and (xp.grad == 0).all()
    assert out_a.item() > 0 and (xa.grad[:, 2] >= 0).all()
    assert xa.grad[:, 2].sum() > 0


def test_learnable_scales_get_gradients():
    torch.manual_seed(0)
    label = torch.randint(0, 3, (2, 6, 6))
    logits = torch.randn(2, 3, 6, 6) * 2 + 4.0 * torch.nn.functional.one_hot(
        label, 3).permute(0, 3, 1, 2)  # fairly good: every LP feasible
    loss = build(num_classes=3)
    loss(logits, label).backward()
    assert loss.last_stats['feasible'].all()
    assert (loss.log_scale.grad != 0).all()
    # an infeasible class does not move its scale
    loss.zero_grad()
    bad = logits.clone()
    bad[:, 1] = -8.0
    loss(bad, label).backward()
    assert not loss.last_stats['feasible'][1]
    assert loss.log_scale.grad[1] == 0


@pytest.mark.parametrize('normalize', ['sum', 'mean'])
def test_normalizations_switchable(normalize):
    loss = build(num_classes=4, normalize=normalize)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    out = loss(x, torch.randint(0, 4, (2, 5, 5)))
    out.backward()
    assert torch.isfinite(out) and x.grad.abs().sum() > 0


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 3), C=st.integers(2, 6), H=st.integers(1, 7),
       W=st.integers(1, 7), scale=st.floats(0.01, 30.0),
       ignore_frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_property_random_shapes(B, C, H, W, scale, ignore_frac, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, C, H, W, generator=g) * scale).requires_grad_()
    label = torch.randint(0, C, (B, H, W), generator=g)
    label[torch.rand(B, H, W, generator=g) < ignore_frac] = 255
    for typ in ('DualIoULoss', 'DualFbetaLoss'):
        loss = MODELS.build(dict(type=typ, **EXACT, num_classes=C))
        out = loss(x, label)
        grad, = torch.autograd.grad(out, x)
        assert torch.isfinite(out) and torch.isfinite(grad).all()
        # the per-class bound never exceeds 1 (term 'bound' is >= 0)
        assert out.item() >= -1e-6
        assert (grad[(label == 255).unsqueeze(1).expand_as(grad)] == 0).all()
