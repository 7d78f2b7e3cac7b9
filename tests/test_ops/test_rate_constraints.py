"""segreg.ops.rate_constraints against brute-force definitions and HiGHS."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from segreg.ops import (hinge_rates, precision_at_recall,
                        precision_at_recall_threshold, recall_at_precision,
                        roc_auc_lagrangian)

D = torch.float64


def t64(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def brute_rates(fp, fn, b, wp, wn):
    tp = sum(w * min(1.0, f - b) for f, w in zip(fp, wp))
    fpu = sum(w * max(0.0, 1.0 + f - b) for f, w in zip(fn, wn))
    return tp, fpu


def test_hinge_rates_and_lagrangians_match_definitions():
    rng = np.random.default_rng(0)
    for _ in range(40):
        P, Q = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        fp, fn = rng.normal(0.5, 1.5, P), rng.normal(-0.5, 1.5, Q)
        wp, wn = rng.uniform(0, 2, P), rng.uniform(0, 2, Q)
        b = float(rng.normal())
        lam = float(rng.uniform(0, 3))
        r, p = float(rng.uniform()), float(rng.uniform())
        tp, fpu = brute_rates(fp, fn, b, wp, wn)
        n, m = wp.sum(), wn.sum()
        h = hinge_rates(t64(fp), t64(fn), b, t64(wp), t64(wn))
        assert h.tp_l.item() == pytest.approx(tp, rel=1e-12, abs=1e-12)
        assert h.fp_u.item() == pytest.approx(fpu, rel=1e-12, abs=1e-12)
        out = precision_at_recall(t64(fp), t64(fn), r, lam, b, t64(wp),
                                  t64(wn))
        assert out.slack.item() == pytest.approx(r - tp / n)
        assert out.value.item() == pytest.approx(fpu / n + lam * (r - tp / n))
        out = recall_at_precision(t64(fp), t64(fn), p, lam, b, t64(wp),
                                  t64(wn))
        slack = (p * fpu - (1 - p) * tp) / n
        assert out.slack.item() == pytest.approx(slack)
        assert out.value.item() == pytest.approx(-tp / n + lam * slack)
        # ROC anchors
        K = 4
        anchors = (np.arange(K) + 0.5) / K
        bs, lams = rng.normal(0, 1, K), rng.uniform(0, 2, K)
        out = roc_auc_lagrangian(t64(fp), t64(fn), t64(anchors), t64(lams),
                                 t64(bs), t64(wp), t64(wn))
        terms = []
        for k in range(K):
            tpk, fpk = brute_rates(fp, fn, bs[k], wp, wn)
            terms.append(-tpk / n + lams[k] * (fpk / m - anchors[k]))
            assert out.slack[k].item() == pytest.approx(fpk / m - anchors[k])
        assert out.value.item() == pytest.approx(np.mean(terms))


def test_dual_gradient_is_the_slack_and_threshold_is_differentiable():
    torch.manual_seed(0)
    fp, fn = torch.randn(6, dtype=D) + 1, torch.randn(9, dtype=D) - 1
    for fn_ in (lambda lam, b: precision_at_recall(fp, fn, 0.8, lam, b),
                lambda lam, b: recall_at_precision(fp, fn, 0.7, lam, b)):
        lam = torch.tensor(0.5, dtype=D, requires_grad=True)
        b = torch.tensor(0.1, dtype=D, requires_grad=True)
        out = fn_(lam, b)
        out.value.backward()
        assert lam.grad.item() == pytest.approx(out.slack.item())
        assert torch.isfinite(b.grad)
        assert torch.autograd.gradcheck(lambda t: fn_(0.5, t).value,
                                        (b.detach().requires_grad_(), ))
    K = 3
    lams = torch.rand(K, dtype=D, requires_grad=True)
    out = roc_auc_lagrangian(fp, fn, torch.tensor([.1, .3, .5], dtype=D),
                             lams, torch.zeros(K, dtype=D))
    out.value.backward()
    torch.testing.assert_close(lams.grad, out.slack / K)


def test_no_positives_or_negatives_gives_zeros():
    e = torch.zeros(0)
    out = precision_at_recall(e, torch.randn(3), 0.5, 1.0)
    assert out.value.item() == 0 and out.slack.item() == 0
    out = recall_at_precision(e, torch.randn(3), 0.5, 1.0)
    assert out.value.item() == 0
    out = roc_auc_lagrangian(torch.randn(3), e, torch.tensor([.5]),
                             torch.tensor([1.]), torch.tensor([0.]))
    assert torch.isfinite(out.value) and out.slack.item() == 0
    fpu, b = precision_at_recall_threshold(e, torch.randn(3), 0.5)
    assert fpu.item() == 0 and b.item() == float('inf')


def par_lp(fp, fn, r, wp, wn):
    """HiGHS on min sum w phi s.t. tau_i <= 1, tau_i + b <= f_i,
    sum w tau >= r n, phi_j >= 0, phi_j >= 1 + f_j - b; x = [b, tau, phi]."""
    P, Q = len(fp), len(fn)
    nv = 1 + P + Q
    c = np.zeros(nv)
    c[1 + P:] = wn
    A, rhs = [], []
    for i in range(P):
        row = np.zeros(nv)
        row[0], row[1 + i] = 1, 1
        A.append(row)
        rhs.append(fp[i])
    row = np.zeros(nv)
    row[1:1 + P] = -wp
    A.append(row)
    rhs.append(-r * wp.sum())
    for j in range(Q):
        row = np.zeros(nv)
        row[0], row[1 + P + j] = -1, -1
        A.append(row)
        rhs.append(-1 - fn[j])
    bounds = [(None, None)] + [(None, 1)] * P + [(0, None)] * Q
    return linprog(c, A_ub=np.array(A), b_ub=np.array(rhs), bounds=bounds,
                   method='highs')


def test_precision_at_recall_threshold_matches_linprog():
    rng = np.random.default_rng(1)
    for it in range(150):
        P, Q = int(rng.integers(1, 7)), int(rng.integers(0, 7))
        fp, fn = rng.normal(0.5, 1.5, P), rng.normal(-0.5, 1.5, Q)
        if it % 3 == 0:
            fp, fn = np.round(fp * 2) / 2, np.round(fn * 2) / 2     # ties
        wp = rng.uniform(0.1, 2, P) if it % 2 else np.ones(P)
        wn = rng.uniform(0, 2, Q) if it % 2 else np.ones(Q)
        r = float(rng.choice([0.0, 0.3, 0.7, 1.0]))
        res = par_lp(fp, fn, r, wp, wn)
        assert res.status == 0, res.message
        fpu, b = precision_at_recall_threshold(t64(fp), t64(fn), r, t64(wp),
                                               t64(wn))
        assert fpu.item() == pytest.approx(res.fun, rel=1e-8, abs=1e-8)
        tp, _ = brute_rates(fp, fn, b.item(), wp, wn)
        assert tp >= r * wp.sum() - 1e-9                   # b* is feasible
        # the Lagrangian at b* equals the optimum for any dual (slack = 0)
        out = precision_at_recall(t64(fp), t64(fn), r, 2.0, b, t64(wp),
                                  t64(wn))
        assert out.slack.item() == pytest.approx(0.0, abs=1e-9)
        assert out.value.item() == pytest.approx(res.fun / wp.sum(),
                                                 rel=1e-7, abs=1e-9)


def rap_lp(fp, fn, p, wp, wn):
    """HiGHS on the normalised R@P LP: min -sum w tau / n s.t.
    (p sum w phi - (1-p) sum w tau) / n <= 0, tau_i <= 1, tau_i + b <= f_i,
    phi_j >= 0, phi_j + b >= 1 + f_j; x = [b, tau, phi]."""
    P, Q = len(fp), len(fn)
    n = wp.sum()
    nv = 1 + P + Q
    c = np.zeros(nv)
    c[1:1 + P] = -wp / n
    A, rhs = [], []
    row = np.zeros(nv)
    row[1:1 + P] = -(1 - p) * wp / n
    row[1 + P:] = p * wn / n
    A.append(row)
    rhs.append(0.0)
    for i in range(P):
        row = np.zeros(nv)
        row[0], row[1 + i] = 1, 1
        A.append(row)
        rhs.append(fp[i])
    for j in range(Q):
        row = np.zeros(nv)
        row[0], row[1 + P + j] = -1, -1
        A.append(row)
        rhs.append(-1 - fn[j])
    bounds = [(None, None)] + [(None, 1)] * P + [(0, None)] * Q
    return linprog(c, A_ub=np.array(A), b_ub=np.array(rhs), bounds=bounds,
                   method='highs')


def test_recall_at_precision_lagrangian_has_the_lp_saddle_point():
    """At the LP's dual lambda*, min_b L(b, lambda*) is the LP optimum."""
    rng = np.random.default_rng(2)
    checked = 0
    for _ in range(40):
        P, Q = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        fp, fn = rng.normal(1.0, 1.5, P), rng.normal(-1.0, 1.5, Q)
        wp, wn = rng.uniform(0.1, 2, P), rng.uniform(0.1, 2, Q)
        p = float(rng.choice([0.3, 0.6, 0.9]))
        res = rap_lp(fp, fn, p, wp, wn)
        if res.status != 0:
            continue
        lam = -res.ineqlin.marginals[0]
        b_star = res.x[0]
        grid = np.linspace(b_star - 5, b_star + 5, 401)
        vals = recall_at_precision(t64(fp), t64(fn), p, lam, t64(grid),
                                   t64(wp), t64(wn)).value
        at = recall_at_precision(t64(fp), t64(fn), p, lam, b_star, t64(wp),
                                 t64(wn))
        assert at.value.item() == pytest.approx(res.fun, rel=1e-7, abs=1e-9)
        assert vals.min().item() >= res.fun - 1e-7           # weak duality
        checked += 1
    assert checked > 20
