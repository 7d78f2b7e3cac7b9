"""segreg.ops.fractional_lp against independent oracles.

The oracle is scipy's HiGHS on the ORIGINAL (tau, eps, phi) program of
docs/regularizer_derivation.md, not the eliminated form the op implements.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from segreg.ops import (classwise_fractional_lp, classwise_hinge_bound,
                        classwise_lp_value, classwise_negative_hinge,
                        classwise_threshold, fractional_lp, hinge_bound,
                        hinge_bound_from_counts, lp_metric_bound)

from _lp_oracle import highs_lp  # noqa: E402

D = torch.float64


def t64(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def lp_oracle(fp, fn, b2, wp, wn, a=0.0):
    """HiGHS on the original program (tests/_lp_oracle.py)."""
    return highs_lp(fp, fn, b2, wp, wn, a)


def random_instance(rng, it):
    P, Q = int(rng.integers(0, 7)), int(rng.integers(0, 7))
    if it % 7:
        P = max(P, 1)
    kind = it % 5
    if kind == 0:      # ties: half-integer grid
        fp = np.round(rng.normal(0.8, 1, P) * 2) / 2
        fn = np.round(rng.normal(-0.5, 1, Q) * 2) / 2
    elif kind == 1:    # single elements
        P, Q = 1, int(rng.integers(0, 2))
        fp = rng.uniform(-0.5, 3, P)
        fn = rng.uniform(-2, 1, Q)
    elif kind == 2:    # mostly infeasible (sum of positives < 1)
        fp = rng.normal(-0.2, 0.5, P)
        fn = rng.normal(0, 1, Q)
    else:
        fp = rng.normal(1.0, 1, P)
        fn = rng.normal(-0.5, 1, Q)
    if it % 2:
        wp = rng.uniform(0, 2, P) * (rng.random(P) > 0.2)
        wn = rng.uniform(0, 2, Q) * (rng.random(Q) > 0.2)
    else:
        wp, wn = np.ones(P), np.ones(Q)
    beta = float(rng.choice([0.0, 0.5, 1.0, 2.0]))
    return fp, fn, wp, wn, beta


def test_matches_linprog_on_random_instances():
    rng = np.random.default_rng(0)
    n_inf = n_feas = 0
    for it in range(400):
        fp, fn, wp, wn, beta = random_instance(rng, it)
        res = lp_oracle(fp, fn, beta**2, wp, wn)
        v, e = fractional_lp(t64(fp), t64(fn), beta, t64(wp), t64(wn))
        assert v.dtype == D and e.dtype == D
        if res.status == 2:                      # infeasible
            n_inf += 1
            assert math.isinf(v.item()) and math.isinf(e.item())
            assert wp.sum() == 0 or (wp * fp).sum() < 1 + 1e-9
            continue
        assert res.status == 0, res.message
        n_feas += 1
        P = len(fp)
        assert v.item() == pytest.approx(res.fun, rel=1e-8, abs=1e-8)
        eps = e.item()
        # ours is feasible for the original program with tau = min(eps, f)
        tau = np.minimum(eps, fp)
        assert eps >= 0
        assert (wp * tau).sum() == pytest.approx(1.0, abs=1e-9)
        phi = np.maximum(0.0, eps + fn)
        assert beta**2 * wp.sum() * eps + (wn * phi).sum() == \
            pytest.approx(res.fun, rel=1e-8, abs=1e-8)
        if beta > 0:                             # the optimum is unique
            assert eps == pytest.approx(res.x[P], rel=1e-7, abs=1e-8)
            pos = wp > 0
            np.testing.assert_allclose(res.x[:P][pos], tau[pos], atol=1e-7)
    assert n_inf > 40 and n_feas > 180


def test_fbeta_tp_term_is_the_constant_one():
    """F_beta's (tp + b^2 n + fp) / tp adds a * sum w tau = 1 to the LP."""
    rng = np.random.default_rng(1)
    for it in range(40):
        fp, fn, wp, wn, beta = random_instance(rng, 3 + 5 * it)
        res = lp_oracle(fp, fn, beta**2, wp, wn, a=1.0)
        v, _ = fractional_lp(t64(fp), t64(fn), beta, t64(wp), t64(wn))
        if res.status == 2:
            assert math.isinf(v.item())
        else:
            assert res.fun == pytest.approx(1.0 + v.item(), rel=1e-8)


def test_iou_mode_is_the_b1_program():
    rng = np.random.default_rng(2)
    fp, fn = t64(rng.uniform(0, 2, 5)), t64(rng.normal(0, 1, 7))
    v_iou, e_iou = fractional_lp(fp, fn, metric='iou')
    v_f1, e_f1 = fractional_lp(fp, fn, 1.0)
    assert v_iou.item() == v_f1.item() and e_iou.item() == e_f1.item()
    with pytest.raises(ValueError):
        fractional_lp(fp, fn, 2.0, metric='iou')
    with pytest.raises(ValueError):
        fractional_lp(fp, fn, metric='dice')
    with pytest.raises(ValueError):
        fractional_lp(fp, fn, -1.0)


@pytest.mark.parametrize('metric,beta', [('iou', 1.0), ('fbeta', 1.0),
                                         ('fbeta', 0.5), ('fbeta', 2.0)])
def test_lp_bound_is_the_hinge_bound_at_the_lp_scale(metric, beta):
    """V(f) = R(f / eps*): the LP picks the score scale 1/eps*."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        fp = t64(rng.uniform(-0.5, 2.0, int(rng.integers(1, 8))))
        fn = t64(rng.normal(-0.5, 1.0, int(rng.integers(0, 8))))
        wp = t64(rng.uniform(0.1, 2.0, fp.numel()))
        v, e = fractional_lp(fp, fn, beta, wp, metric=metric)
        if not torch.isfinite(v):
            continue
        hb = hinge_bound(fp / e, fn / e, beta, wp, metric=metric)
        assert hb.tp_l.item() == pytest.approx(1.0 / e.item(), rel=1e-9)
        assert hb.bound.item() == pytest.approx(
            lp_metric_bound(v, beta, metric).item(), rel=1e-9)


def analytic_duals(fp, fn, wp, wn, beta, eps):
    """-lambda_i for positives and rho_j for negatives (the LP's duals)."""
    active = eps + fn > 0
    above = fp > eps
    mu = (beta**2 * wp.sum() + wn[active].sum()) / wp[above].sum()
    g_pos = np.where(above, 0.0, -mu * wp)
    g_neg = np.where(active, wn, 0.0)
    return g_pos, g_neg


def test_gradient_is_the_optimal_dual():
    """Autograd = analytic duals = HiGHS's marginals (unique duals)."""
    rng = np.random.default_rng(4)
    checked = 0
    for it in range(120):
        P, Q = int(rng.integers(1, 7)), int(rng.integers(0, 7))
        fp, fn = rng.normal(0.8, 1, P), rng.normal(-0.3, 1, Q)
        wp, wn = rng.uniform(0.2, 2, P), rng.uniform(0.2, 2, Q)
        beta = float(rng.choice([0.5, 1.0, 2.0]))
        xp, xn = t64(fp).requires_grad_(), t64(fn).requires_grad_()
        v, e = fractional_lp(xp, xn, beta, t64(wp), t64(wn))
        if not torch.isfinite(v):
            continue
        eps = e.item()
        # stay away from kinks, where the dual is not unique
        if np.min(np.abs(fp - eps)) < 1e-6 or \
                (Q and np.min(np.abs(fn + eps)) < 1e-6):
            continue
        v.backward()
        g_pos, g_neg = analytic_duals(fp, fn, wp, wn, beta, eps)
        np.testing.assert_allclose(xp.grad.numpy(), g_pos, atol=1e-9)
        np.testing.assert_allclose(xn.grad.numpy(), g_neg, atol=1e-9)
        # HiGHS: d fun / d b_ub; rhs of tau_i <= f_i is f_i (row 2i+1),
        # rhs of eps - phi_j <= -f_j is -f_j (row 2P + j)
        res = lp_oracle(fp, fn, beta**2, wp, wn)
        marg = res.ineqlin.marginals
        np.testing.assert_allclose(marg[1:2 * P:2], g_pos, atol=1e-7)
        np.testing.assert_allclose(-marg[2 * P:], g_neg, atol=1e-7)
        # dual feasibility: lambda_i >= 0, 0 <= rho_j <= w_j
        assert (g_pos <= 0).all() and (g_neg >= 0).all()
        checked += 1
    assert checked > 60


def test_gradcheck_float64():
    torch.manual_seed(0)
    fp = (torch.rand(6, dtype=D) * 2 + 0.2).requires_grad_()
    fn = (torch.randn(5, dtype=D) - 0.3).requires_grad_()
    wp = torch.rand(6, dtype=D) + 0.5
    wn = torch.rand(5, dtype=D) + 0.5
    for beta in (0.5, 1.0, 2.0):
        assert torch.autograd.gradcheck(
            lambda a, b: fractional_lp(a, b, beta, wp, wn)[0], (fp, fn))
        assert torch.autograd.gradcheck(
            lambda a, b: fractional_lp(a, b, beta, wp, wn)[1], (fp, fn))


def test_gradcheck_classwise_float64():
    torch.manual_seed(1)
    N, C = 40, 4
    y = torch.arange(N) % C
    x = torch.randn(N, C, dtype=D) - 1.0
    x[torch.arange(N), y] += 2.5           # every class feasible
    x.requires_grad_()
    w = torch.rand(N, dtype=D) + 0.5
    r = classwise_fractional_lp(x, y, w)
    assert r.feasible.all()

    def f(s):
        out = classwise_fractional_lp(s, y, w, beta=1.5)
        return out.value, out.eps

    assert torch.autograd.gradcheck(f, (x, ))
    # (B, C, H, W) layout
    x4 = x.detach().reshape(2, 4, 5, C).permute(0, 3, 1, 2).contiguous()
    y4 = y.reshape(2, 4, 5)
    x4.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda s: classwise_fractional_lp(s, y4).value, (x4, ))


def per_class_reference(x, y, w, C, beta):
    """The class-wise problem by a Python loop of fractional_lp."""
    vals, epss, ns = [], [], []
    valid = (y >= 0) & (y < C) & (w > 0)
    for c in range(C):
        pos = valid & (y == c)
        neg = valid & (y != c)
        v, e = fractional_lp(x[pos, c], x[neg, c], beta, w[pos], w[neg])
        vals.append(v)
        epss.append(e)
        ns.append(w[pos].sum())
    return torch.stack(vals), torch.stack(epss), torch.stack(ns)


def check_classwise(x, y, w, C, beta, grads=True):
    xf = x.reshape(-1, C) if x.dim() == 2 else \
        x.movedim(1, -1).reshape(-1, C)
    yf = y.reshape(-1)
    wf = w.reshape(-1) if w is not None else torch.ones(yf.numel(), dtype=D)
    r = classwise_fractional_lp(x, y, w, beta)
    v_ref, e_ref, n_ref = per_class_reference(xf.detach(), yf, wf, C, beta)
    assert torch.equal(r.feasible, torch.isfinite(v_ref))
    torch.testing.assert_close(r.value, v_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r.eps, e_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r.n_pos, n_ref)
    if grads and x.requires_grad:
        g1, = torch.autograd.grad(
            torch.where(r.feasible, r.value, 0).sum(), x)
        xr = xf.detach().clone().requires_grad_()
        v2, _, _ = per_class_reference(xr, yf, wf, C, beta)
        g2, = torch.autograd.grad(torch.where(torch.isfinite(v2), v2,
                                              0).sum(), xr)
        if x.dim() > 2:
            g1 = g1.movedim(1, -1).reshape(-1, C)
        torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-10)
    return r


def test_classwise_equals_per_class():
    g = torch.Generator().manual_seed(5)
    for it in range(25):
        N = int(torch.randint(0, 60, (1, ), generator=g))
        C = int(torch.randint(1, 7, (1, ), generator=g))
        x = torch.randn(N, C, generator=g, dtype=D) * 1.5
        y = torch.randint(0, C, (N, ), generator=g)
        x[torch.arange(N), y] += 1.0
        if it % 3 == 0:   # ties
            x = (x * 2).round() / 2
        if it % 4 == 1:   # ignored labels: 255 and -1
            y[torch.rand(N, generator=g) < 0.2] = 255
            y[torch.rand(N, generator=g) < 0.1] = -1
        w = None
        if it % 2:
            w = torch.rand(N, generator=g, dtype=D) * 2
            w[torch.rand(N, generator=g) < 0.2] = 0
        beta = [0.5, 1.0, 2.0][it % 3]
        check_classwise(x.requires_grad_(), y, w, C, beta)
    # (B, C, H, W) layout with ignore
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=D) + 0.5
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    y[0, 0] = 255
    check_classwise(x.requires_grad_(), y, None, 3, 1.0)


def test_composition_matches_the_one_call():
    """threshold -> negative hinge -> value, as the DDP path composes it."""
    g = torch.Generator().manual_seed(6)
    N, C = 50, 5
    x = torch.randn(N, C, generator=g, dtype=D)
    y = torch.randint(0, C, (N, ), generator=g)
    x[torch.arange(N), y] += 1.5
    w = torch.rand(N, generator=g, dtype=D)
    r = classwise_fractional_lp(x, y, w, 2.0)
    # two "ranks": thresholds from all positives, negative sums per shard
    pos = x.gather(1, y[:, None])[:, 0]
    thr = classwise_threshold(pos, y, C, w)
    neg = classwise_negative_hinge(x[:20], y[:20], thr.eps, w[:20]) + \
        classwise_negative_hinge(x[20:], y[20:], thr.eps, w[20:])
    v = classwise_lp_value(thr.eps, thr.n_pos, neg, thr.feasible, 2.0)
    torch.testing.assert_close(v, r.value)
    torch.testing.assert_close(thr.eps, r.eps)


def test_zero_weight_and_ignored_pixels_change_nothing():
    g = torch.Generator().manual_seed(7)
    N, C, M = 40, 4, 15
    x = torch.randn(N, C, generator=g, dtype=D)
    y = torch.randint(0, C, (N, ), generator=g)
    x[torch.arange(N), y] += 1.5
    w = torch.rand(N, generator=g, dtype=D) + 0.1
    extra = torch.randn(M, C, generator=g, dtype=D) * 1e3   # huge scores
    ey = torch.randint(0, C, (M, ), generator=g)
    x0 = x.clone().requires_grad_()
    r0 = classwise_fractional_lp(x0, y, w)
    g0, = torch.autograd.grad(torch.where(r0.feasible, r0.value, 0).sum(),
                              x0)
    for labels, weights in ((torch.cat([y, ey]),
                             torch.cat([w, torch.zeros(M, dtype=D)])),
                            (torch.cat([y, torch.full((M, ), 255)]),
                             torch.cat([w, torch.rand(M, dtype=D)]))):
        x1 = torch.cat([x, extra]).requires_grad_()
        r1 = classwise_fractional_lp(x1, labels, weights)
        assert torch.equal(r1.feasible, r0.feasible)
        torch.testing.assert_close(r1.value, r0.value, rtol=1e-12, atol=0)
        torch.testing.assert_close(r1.eps, r0.eps, rtol=1e-12, atol=0)
        g1, = torch.autograd.grad(
            torch.where(r1.feasible, r1.value, 0).sum(), x1)
        torch.testing.assert_close(g1[:N], g0, rtol=1e-12, atol=1e-14)
        assert (g1[N:] == 0).all()
    # single problem: zero-weight positives and negatives
    fp, fn = x[:10, 0].detach(), x[10:, 0].detach()
    v0, e0 = fractional_lp(fp, fn, 1.0, w[:10], w[10:])
    v1, e1 = fractional_lp(torch.cat([fp, extra[:, 0]]),
                           torch.cat([fn, extra[:, 1]]), 1.0,
                           torch.cat([w[:10], torch.zeros(M, dtype=D)]),
                           torch.cat([w[10:], torch.zeros(M, dtype=D)]))
    assert v0.item() == pytest.approx(v1.item(), rel=1e-12)
    assert e0.item() == pytest.approx(e1.item(), rel=1e-12)


def test_edge_cases_are_finite_or_documented_inf():
    e0 = torch.zeros(0)
    v, e = fractional_lp(e0, torch.randn(3))           # no positives
    assert math.isinf(v) and math.isinf(e)
    v, e = fractional_lp(e0, e0)
    assert math.isinf(v)
    v, e = fractional_lp(torch.tensor([1.0]), e0)      # single, no negatives
    assert v.item() == 1.0 and e.item() == 1.0
    v, e = fractional_lp(torch.tensor([3.0]), e0, 2.0)
    assert v.item() == 4.0 and e.item() == 1.0
    v, e = fractional_lp(torch.tensor([0.5, 0.49]), e0)  # sum < 1
    assert math.isinf(v)
    # class-wise: empty batch, all ignored, absent class
    for x, y in ((torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
                 (torch.randn(6, 4), torch.full((6, ), 255))):
        x.requires_grad_()
        r = classwise_fractional_lp(x, y)
        assert not r.feasible.any() and torch.isinf(r.value).all()
        assert (r.n_pos == 0).all()
        loss = torch.where(r.feasible, r.value, 0).sum()
        loss.backward()
        assert torch.isfinite(x.grad).all() and (x.grad == 0).all()
    x = torch.randn(8, 3)
    x[:, :2] += 2
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])            # class 2 absent
    r = classwise_fractional_lp(x, y)
    assert r.feasible.tolist() == [True, True, False]
    assert r.n_pos[2] == 0 and torch.isinf(r.value[2])


def test_saturated_scores_give_finite_values_and_gradients():
    g = torch.Generator().manual_seed(8)
    N, C = 64, 5
    y = torch.randint(0, C, (N, ), generator=g)
    x = torch.randn(N, C, generator=g).sign() * 1e4       # float32
    x[torch.arange(N), y] = 1e4
    x[:5] = -1e4                                          # some hopeless
    x.requires_grad_()
    r = classwise_fractional_lp(x, y)
    assert r.feasible.any()
    assert torch.isfinite(r.value[r.feasible]).all()
    torch.where(r.feasible, r.value, 0).sum().backward()
    assert torch.isfinite(x.grad).all()
    hb = classwise_hinge_bound(x, y)
    assert torch.isfinite(hb.bound).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(dtype):
    g = torch.Generator().manual_seed(9)
    x = (torch.randn(30, 4, generator=g) + 0.3).to(dtype)
    y = torch.randint(0, 4, (30, ), generator=g)
    x[torch.arange(30), y] += 2
    r = classwise_fractional_lp(x, y)
    r32 = classwise_fractional_lp(x.float(), y)
    assert r.value.dtype == torch.float32
    torch.testing.assert_close(r.value, r32.value)
    v, e = fractional_lp(x[y == 0, 0], x[y != 0, 0])
    assert v.dtype == torch.float32 and e.dtype == torch.float32
    xg = x.clone().requires_grad_()
    rg = classwise_fractional_lp(xg, y)
    torch.where(rg.feasible, rg.value, 0).sum().backward()
    assert xg.grad.dtype == dtype and torch.isfinite(xg.grad).all()


def test_autocast_does_not_lower_precision():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(300, 6, generator=g) + 0.2
    y = torch.randint(0, 6, (300, ), generator=g)
    x[torch.arange(300), y] += 2
    ref = classwise_fractional_lp(x, y)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        r = classwise_fractional_lp(x, y)
        hb = classwise_hinge_bound(x, y)
    assert r.value.dtype == torch.float32
    torch.testing.assert_close(r.value, ref.value)
    torch.testing.assert_close(hb.bound, classwise_hinge_bound(x, y).bound)


def test_hinge_bound_definitions():
    g = torch.Generator().manual_seed(10)
    N, C = 50, 4
    x = torch.randn(N, C, generator=g, dtype=D) * 2
    y = torch.randint(0, C, (N, ), generator=g)
    y[:3] = 255
    w = torch.rand(N, generator=g, dtype=D)
    for metric, beta in (('iou', 1.0), ('fbeta', 1.0), ('fbeta', 2.0)):
        hb = classwise_hinge_bound(x, y, w, beta, metric)
        for c in range(C):
            pos, neg = (y == c), (y != c) & (y < C)
            tp = (w[pos] * x[pos, c].clamp(max=1)).sum()
            fp = (w[neg] * (1 + x[neg, c]).clamp(min=0)).sum()
            n = w[pos].sum()
            if metric == 'iou':
                ref = tp / (n + fp) if tp >= 0 else tp / n
            else:
                ref = (1 + beta**2) * tp / (
                    (tp + beta**2 * n + fp) if tp >= 0 else beta**2 * n)
            assert hb.bound[c].item() == pytest.approx(ref.item(), rel=1e-12)
            one = hinge_bound(x[pos, c], x[neg, c], beta, w[pos], w[neg],
                              metric)
            assert one.bound.item() == pytest.approx(ref.item(), rel=1e-12)


def test_hinge_bound_has_gradient_when_lp_is_infeasible():
    """At init every logit margin is < 0: LP infeasible, bound still moves."""
    N, C = 40, 5
    y = torch.arange(N) % C
    x = torch.full((N, C), math.log(1 / (C - 1)), dtype=D)
    x = (x + 0.1 * torch.randn(N, C, dtype=D)).requires_grad_()
    r = classwise_fractional_lp(x, y)
    assert not r.feasible.any()
    hb = classwise_hinge_bound(x, y, metric='iou')
    assert (hb.tp_l < 0).all()
    (1 - hb.bound).sum().backward()
    pos_grad = x.grad[torch.arange(N), y]
    assert (pos_grad < 0).all()         # raising a positive lowers the loss
    # monotone: for tp_l < 0 more false positives never raise the bound
    tp, n = torch.tensor(-2.0), torch.tensor(4.0)
    b = [hinge_bound_from_counts(tp, torch.tensor(f), n, metric='iou')
         for f in (0.0, 1.0, 10.0)]
    assert b[0] >= b[1] >= b[2]


# ---------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------
@st.composite
def problems(draw):
    N = draw(st.integers(0, 40))
    C = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    x = torch.randn(N, C, generator=g, dtype=D) * scale
    y = torch.randint(-1, C + 1, (N, ), generator=g)     # -1, C: ignored
    x[torch.arange(N), y.clamp(0, C - 1)] += draw(st.sampled_from([0., 2.]))
    if draw(st.booleans()):
        x = (x * 2).round() / 2                          # ties
    w = None
    if draw(st.booleans()):
        w = torch.rand(N, generator=g, dtype=D) * (
            torch.rand(N, generator=g) > 0.2)
    beta = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return x, y, w, C, beta


@settings(max_examples=60, deadline=None)
@given(problems())
def test_property_classwise(problem):
    x, y, w, C, beta = problem
    r = check_classwise(x, y, w, C, beta, grads=False)
    wf = torch.ones(y.shape, dtype=D) if w is None else w
    valid = (y >= 0) & (y < C) & (wf > 0)
    for c in torch.nonzero(r.feasible).flatten().tolist():
        pos = valid & (y == c)
        e = r.eps[c]
        # eps is the water-filling threshold, V >= b^2 (n eps >= 1)
        assert (wf[pos] * torch.minimum(x[pos, c], e)).sum().item() == \
            pytest.approx(1.0, abs=1e-9)
        assert r.value[c].item() >= beta**2 * (1 - 1e-9)
    # convexity of V in the scores (midpoint) and monotonicity
    x2 = x + torch.randn(x.shape, dtype=D, generator=torch.Generator()
                         .manual_seed(C))
    r2 = classwise_fractional_lp(x2, y, w, beta)
    rm = classwise_fractional_lp((x + x2) / 2, y, w, beta)
    both = r.feasible & r2.feasible
    assert rm.feasible[both].all()
    assert (rm.value[both] <= (r.value[both] + r2.value[both]) / 2
            + 1e-9).all()
    up = x.clone()
    up[valid, y.clamp(0, C - 1)[valid]] += 0.3           # raise positives
    ru = classwise_fractional_lp(up, y, w, beta)
    assert (ru.value[r.feasible] <= r.value[r.feasible] + 1e-9).all()


def test_negative_hinge_of_an_empty_image_batch_is_zero():
    from segreg.ops import classwise_negative_hinge
    scores = torch.zeros(0, 4, 3, 3, requires_grad=True)
    labels = torch.zeros(0, 3, 3, dtype=torch.long)
    out = classwise_negative_hinge(scores, labels, torch.ones(4))
    assert out.shape == (4,) and torch.equal(out, torch.zeros(4))
    out.sum().backward()
    assert scores.grad is not None and scores.grad.shape == scores.shape
