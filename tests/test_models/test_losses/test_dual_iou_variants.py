"""The variants of DualIoULoss / DualFbetaLoss: the log-odds
backward, pixel subsampling (``sample_stride``), the direct bound's counts
and the persistent class-level duals (``solver='dual_ascent'``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.ops import softmax_log_odds

from _lp_oracle import lp_value


def class_scores(x, kind='log_odds'):
    assert kind == 'log_odds'
    return softmax_log_odds(x)



def build(**kw):
    """Every pixel and the exact solver unless a test says otherwise."""
    cfg = dict(type=kw.pop('type', 'DualIoULoss'),
               num_classes=kw.pop('num_classes', 4), solver='exact',
               sample_stride=1)
    cfg.update(kw)
    return MODELS.build(cfg)


# --------------------------------------------------------------------------
# log-odds scores
# --------------------------------------------------------------------------
def test_log_odds_backward_matches_plain_autograd_for_confident_pixels():
    """The custom backward (a p > 1/2 mask instead of argmax) against
    autograd of ``log p - log(1 - p)`` in float64, with many pixels whose
    top class has p close to 1 (where the naive backward cancels)."""
    torch.manual_seed(0)
    z = (torch.randn(3, 5, 6, 7, dtype=torch.float64) * 6).requires_grad_()
    g_out = torch.randn(3, 5, 6, 7, dtype=torch.float64)
    s = class_scores(z, 'log_odds')
    gx, = torch.autograd.grad(s, z, g_out)
    z2 = z.detach().clone().requires_grad_()
    logp = torch.log_softmax(z2, dim=1)
    ref = logp - torch.log1p(-logp.exp())
    gref, = torch.autograd.grad(ref, z2, g_out)
    p_top = logp.exp().amax(dim=1)
    assert (p_top > 0.99).float().mean() > 0.3  # the hard case is covered
    assert (p_top < 0.5).any()  # and pixels without a p > 1/2 class
    torch.testing.assert_close(s, ref)
    torch.testing.assert_close(gx, gref, rtol=1e-7, atol=1e-9)


def test_log_odds_gradcheck_float64():
    z = (torch.randn(2, 4, 3, 3, dtype=torch.float64) * 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: class_scores(t, 'log_odds'),
                                    (z, ))


# --------------------------------------------------------------------------
# sample_stride
# --------------------------------------------------------------------------
def _fixed_phase(monkeypatch, oy, ox):
    phases = iter([oy, ox] * 1000)
    monkeypatch.setattr(torch, 'randint',
                        lambda high, size, **kw: torch.tensor(next(phases)))


def test_stride_equals_the_full_loss_on_the_subsampled_pixels(monkeypatch):
    torch.manual_seed(1)
    x = (torch.randn(2, 4, 13, 11) * 3).requires_grad_()
    y = torch.randint(0, 4, (2, 13, 11))
    y[0, :3] = 255
    full, strided = build(), build(sample_stride=3)
    _fixed_phase(monkeypatch, 2, 1)
    out = strided(x, y)
    g, = torch.autograd.grad(out, x)
    xs = x.detach()[..., 2::3, 1::3].clone().requires_grad_()
    ref = full(xs, y[..., 2::3, 1::3],
               weight=torch.full(y[..., 2::3, 1::3].shape, 9.0))
    gref, = torch.autograd.grad(ref, xs)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g[..., 2::3, 1::3], gref)
    mask = torch.ones_like(g, dtype=torch.bool)
    mask[..., 2::3, 1::3] = False
    assert (g[mask] == 0).all()  # only the drawn pixels get a gradient


def test_stride_counts_are_unbiased_over_the_phases(monkeypatch):
    """Averaged over the s^2 phases, the weighted class counts equal the
    full-resolution counts exactly (each phase is one cell of a partition,
    weighted s^2)."""
    torch.manual_seed(2)
    s = 3
    x = torch.randn(2, 5, 10, 8)
    y = torch.randint(0, 5, (2, 10, 8))
    y[1, 4:] = 255
    loss = build(num_classes=5, sample_stride=s)
    full = build(num_classes=5)
    full(x, y)
    n_full = full.last_stats['n']
    acc = torch.zeros_like(n_full)
    for oy in range(s):
        for ox in range(s):
            _fixed_phase(monkeypatch, oy, ox)
            loss(x, y)
            acc += loss.last_stats['n']
    torch.testing.assert_close(acc / s**2, n_full)


def test_stride_draws_its_phase_from_the_global_generator():
    x = torch.randn(2, 4, 16, 16)
    y = torch.randint(0, 4, (2, 16, 16))
    loss = build(sample_stride=4)
    torch.manual_seed(7)
    a = [loss(x, y).item() for _ in range(4)]
    torch.manual_seed(7)
    b = [loss(x, y).item() for _ in range(4)]
    assert a == b and len(set(a)) > 1


def test_stride_larger_than_the_image_and_bad_values():
    x = torch.randn(1, 3, 2, 2, requires_grad=True)
    out = build(num_classes=3, sample_stride=8)(x, torch.zeros(1, 2, 2,
                                                              dtype=torch.long))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    for bad in (0, 2.5, -1):
        with pytest.raises(ValueError, match='sample_stride'):
            build(sample_stride=bad)


# --------------------------------------------------------------------------
# the direct bound's counts
# --------------------------------------------------------------------------
def test_direct_bound_matches_a_numpy_loop():
    """fp and tp of the direct bound, from the loss's statistics (term =
    1 - tp / (n + fp)), against a plain numpy loop."""
    torch.manual_seed(3)
    C = 3
    x = torch.randn(1, C, 4, 5, dtype=torch.float64) * 2
    y = torch.randint(0, C, (1, 4, 5))
    loss = build(num_classes=C, solver='direct')
    loss(x, y)
    s = class_scores(x).numpy()[0].reshape(C, -1)
    lab = y.numpy().reshape(-1)
    checked = 0
    for c in range(C):
        if (lab == c).sum() == 0:
            continue
        checked += 1
        pos, neg = s[c][lab == c], s[c][lab != c]
        tp = np.sum(np.minimum(1.0, pos))
        fp = np.sum(np.maximum(0.0, 1.0 + neg))
        n = len(pos)
        bound = tp / (n + fp) if tp >= 0 else tp / n
        assert loss.last_stats['bound'][c].item() == pytest.approx(
            bound, rel=1e-9)
    assert checked >= 2


# --------------------------------------------------------------------------
# persistent class-level duals
# --------------------------------------------------------------------------
def _lp(pos, neg):
    """The LP by HiGHS (tests/_lp_oracle.py); must be feasible."""
    value, eps = lp_value(pos, neg)
    assert np.isfinite(value)
    return value, eps


def test_dual_ascent_lagrangian_at_the_saddle_is_the_lp_value():
    """With eps_c at the LP optimum (normalised constraint mean tau = 1, i.e.
    the LP of f / n scaled by n) the constraint is tight and the class's
    primal term equals V(f / n) from HiGHS: the persistent form is the same
    program as the exact per-batch solve."""
    torch.manual_seed(5)
    C = 3
    y = torch.randint(0, C, (1, 4, 4))
    # logits that mostly favour the label: every class's LP is feasible
    x = torch.randn(1, C, 4, 4, dtype=torch.float64) + 3.0 * \
        torch.nn.functional.one_hot(y, C).permute(0, 3, 1, 2)
    s = class_scores(x).numpy()[0].reshape(C, -1) * 30.0
    lab = y.numpy().reshape(-1)
    loss = build(num_classes=C, solver='dual_ascent', eta_mu=0.0).double()
    with torch.no_grad():
        loss.log_scale.fill_(math.log(30.0))
    vals, eps_opt = {}, torch.zeros(C, dtype=torch.float64)
    for c in range(C):
        n = int((lab == c).sum())
        if n == 0 or s[c][lab == c].mean() < 1.0:
            continue
        v, e = _lp(s[c][lab == c] / n, s[c][lab != c] / n)
        vals[c] = v
        eps_opt[c] = e * n
    assert vals
    with torch.no_grad():
        loss.log_eps.copy_(eps_opt.clamp(min=1e-12).log())
    loss.train()
    loss(x, y)
    st = loss.last_stats
    for c, v in vals.items():
        assert st['slack'][c].item() == pytest.approx(0.0, abs=1e-7)
        primal = st['value'][c].item() / st['n'][c].item()
        assert primal == pytest.approx(v, rel=1e-6)
        assert st['bound'][c].item() == pytest.approx(1.0 / v, rel=1e-6)


def test_dual_ascent_steps_mu_only_when_training_and_keeps_it_nonnegative():
    torch.manual_seed(6)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    y = torch.randint(0, 3, (2, 6, 6))  # class 3 absent
    loss = build(solver='dual_ascent', eta_mu=0.5)
    loss.train()
    out = loss(x, y)
    slack = loss.last_stats['slack']
    torch.testing.assert_close(loss.mu, torch.ones(4))  # not yet stepped
    loss.dual_step()  # DualAscentHook's call after the iteration
    expected = (1.0 + 0.5 * slack).clamp(min=0)
    torch.testing.assert_close(loss.mu[:3], expected[:3])
    assert loss.mu[3] == 1.0  # absent: no step
    n_first = loss.last_stats['n']
    torch.testing.assert_close(loss.count[:3], n_first[:3])
    out.backward()
    assert x.grad.abs().sum() > 0  # a gradient from the first iteration
    assert loss.log_eps.grad is not None
    loss.eval()
    mu = loss.mu.clone()
    loss(x, y)
    torch.testing.assert_close(loss.mu, mu)
    loss.train()
    with torch.no_grad():
        loss.log_eps.fill_(5.0)  # eps = e^5
    good = 10.0 * torch.nn.functional.one_hot(y, 4).permute(0, 3, 1, 2)
    for _ in range(20):  # positives' scores ~10 > 1: slack < 0, mu -> 0
        loss(good.float(), y)
        loss.dual_step()
        assert (loss.last_stats['slack'][:3] < 0).all()
    assert (loss.mu >= 0).all() and loss.mu[:3].min() == 0


def test_dual_ascent_state_is_in_the_state_dict():
    loss = build(solver='dual_ascent')
    loss.train()
    loss(torch.randn(1, 4, 5, 5), torch.randint(0, 4, (1, 5, 5)))
    sd = loss.state_dict()
    assert {'mu', 'count', 'log_eps'} <= set(sd)
    fresh = build(solver='dual_ascent')
    fresh.load_state_dict(sd)
    torch.testing.assert_close(fresh.mu, loss.mu)
    torch.testing.assert_close(fresh.count, loss.count)
    torch.testing.assert_close(fresh.log_eps.detach(),
                               loss.log_eps.detach())


def test_dual_ascent_needs_num_classes_and_a_known_solver():
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='DualIoULoss', learn_scale=False,
                          solver='dual_ascent'))
    with pytest.raises(ValueError, match='solver'):
        build(solver='newton')


@pytest.mark.parametrize('typ', ['DualIoULoss', 'DualFbetaLoss'])
def test_dual_ascent_is_finite_on_degenerate_batches(typ):
    loss = build(type=typ, solver='dual_ascent')
    loss.train()
    for y in (torch.full((1, 4, 4), 255), torch.zeros(1, 4, 4).long()):
        x = torch.randn(1, 4, 4, 4, requires_grad=True)
        out = loss(x * 50, y)
        loss.dual_step()
        assert torch.isfinite(loss.mu).all()
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------
# solver='direct'
# --------------------------------------------------------------------------
@pytest.mark.parametrize('typ,metric', [('DualIoULoss', 'iou'),
                                        ('DualFbetaLoss', 'fbeta')])
def test_direct_solver_is_the_classwise_hinge_bound(typ, metric):
    """No LP: the loss is 1 - the direct hinge bound of segreg.ops, averaged
    over the present classes, whatever the feasibility."""
    from segreg.ops import classwise_hinge_bound
    torch.manual_seed(8)
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64) * 3
    x += 4 * torch.nn.functional.one_hot(torch.arange(4).repeat(15)[:30]
                                         .reshape(6, 5), 4).permute(2, 0, 1)
    y = torch.randint(0, 3, (2, 6, 5))
    y[0, 0] = 255
    loss = build(type=typ, solver='direct')
    out = loss(x, y)
    hb = classwise_hinge_bound(class_scores(x), y, metric=metric)
    present = hb.n_pos > 0
    torch.testing.assert_close(out, (1 - hb.bound[present]).mean())
    with pytest.raises(TypeError, match="'normalize' is an option of "
                       "solver='exact'"):
        build(solver='direct', normalize='mean')


# --------------------------------------------------------------------------
# normalize='mean'
# --------------------------------------------------------------------------
def test_mean_normalisation_is_the_lp_of_f_over_n():
    """normalize='mean': the value of a feasible class is V(f / n_c) from
    HiGHS (so n_c V(f / n_c), the LP with sum tau = n_c, is >= n_c and the
    bound is <= 1)."""
    torch.manual_seed(9)
    C = 3
    y = torch.randint(0, C, (1, 5, 5))
    x = torch.randn(1, C, 5, 5, dtype=torch.float64) + 4.0 * \
        torch.nn.functional.one_hot(y, C).permute(0, 3, 1, 2)
    lp = build(num_classes=C, learn_scale=False, normalize='mean')
    lp(x, y)
    s = class_scores(x).numpy()[0].reshape(C, -1)
    lab = y.numpy().reshape(-1)
    checked = 0
    for c in range(C):
        if not bool(lp.last_stats['feasible'][c]):
            continue
        n = (lab == c).sum()
        v, _ = _lp(s[c][lab == c] / n, s[c][lab != c] / n)
        assert lp.last_stats['value'][c].item() == pytest.approx(v,
                                                                rel=1e-6)
        assert 0.0 < lp.last_stats['bound'][c] <= 1.0
        checked += 1
    assert checked >= 2
    with pytest.raises(ValueError, match='normalize'):
        build(normalize='max')


def test_mean_normalisation_gradcheck_float64():
    torch.manual_seed(10)
    loss = build(num_classes=3, learn_scale=False, normalize='mean')
    y = torch.randint(0, 3, (1, 3, 4))
    x = (torch.randn(1, 3, 3, 4, dtype=torch.float64) + 3.0 *
         torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2)
         ).requires_grad_()
    loss(x, y)
    assert loss.last_stats['feasible'].any()
    assert torch.autograd.gradcheck(
        lambda t: loss(t, y), (x, ), eps=1e-6, atol=1e-5)
