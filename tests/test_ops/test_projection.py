"""segreg.ops.project_tau_eps against exact and numerical QP oracles."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from segreg.ops import project_tau_eps

D = torch.float64


def brute_force_projection(gamma, delta):
    """Exact oracle: enumerate the KKT active sets.

    At the optimum some set A has tau_i = eps (i in A), tau_i = gamma_i
    elsewhere, and either eps > 0 with eps = (delta + sum_A gamma)/(|A|+1)
    (stationarity in eps) or eps = 0 with tau = min(gamma, 0). Every
    candidate is checked for feasibility; the best feasible one wins.
    """
    M = len(gamma)
    best, best_obj = None, np.inf
    cands = [(np.minimum(gamma, 0.0), 0.0)]
    for r in range(M + 1):
        for A in itertools.combinations(range(M), r):
            e = (delta + gamma[list(A)].sum()) / (r + 1)
            tau = gamma.copy()
            tau[list(A)] = e
            cands.append((tau, e))
    for tau, e in cands:
        if e < -1e-12 or (tau > e + 1e-12).any():
            continue
        obj = ((tau - gamma)**2).sum() + (e - delta)**2
        if obj < best_obj - 1e-15:
            best, best_obj = (tau, e), obj
    return best


def random_case(rng, it):
    M = int(rng.integers(0, 7))
    kind = it % 5
    if kind == 0:
        gamma = np.round(rng.normal(0, 1, M) * 2) / 2            # ties
        delta = float(np.round(rng.normal() * 2) / 2)
    elif kind == 1:
        gamma = -np.abs(rng.normal(0, 1, M)) - 0.1               # all < 0
        delta = -abs(float(rng.normal())) - 0.1
    elif kind == 2:
        M = 1
        gamma, delta = rng.normal(0, 2, 1), float(rng.normal(0, 2))
    else:
        gamma, delta = rng.normal(0, 1.5, M), float(rng.normal(0, 1.5))
    return gamma, delta


def test_matches_active_set_oracle():
    rng = np.random.default_rng(0)
    for it in range(300):
        gamma, delta = random_case(rng, it)
        tau, eps = project_tau_eps(torch.tensor(gamma),
                                   torch.tensor(delta, dtype=D))
        ref_tau, ref_eps = brute_force_projection(gamma, delta)
        assert eps.item() == pytest.approx(ref_eps, abs=1e-12)
        np.testing.assert_allclose(tau.numpy(), ref_tau, atol=1e-12)


def test_matches_slsqp():
    rng = np.random.default_rng(1)
    for it in range(30):
        M = int(rng.integers(1, 6))
        gamma, delta = rng.normal(0, 1.5, M), float(rng.normal(0, 1.5))
        z0 = np.concatenate([gamma, [delta]])
        cons = [{'type': 'ineq', 'fun': lambda z: z[-1] - z[:-1],
                 'jac': lambda z: np.hstack([-np.eye(len(z) - 1),
                                             np.ones((len(z) - 1, 1))])},
                {'type': 'ineq', 'fun': lambda z: z[-1:],
                 'jac': lambda z: np.eye(1, len(z), len(z) - 1)}]
        res = minimize(lambda z: ((z - z0)**2).sum(), np.zeros(M + 1),
                       jac=lambda z: 2 * (z - z0), constraints=cons,
                       method='SLSQP', options={'ftol': 1e-14,
                                                'maxiter': 500})
        assert res.success
        tau, eps = project_tau_eps(torch.tensor(gamma),
                                   torch.tensor(delta, dtype=D))
        np.testing.assert_allclose(tau.numpy(), res.x[:-1], atol=1e-6)
        assert eps.item() == pytest.approx(res.x[-1], abs=1e-6)


def test_special_cases():
    # empty tau: eps is clipped at 0
    tau, eps = project_tau_eps(torch.zeros(0), torch.tensor(-1.0))
    assert tau.numel() == 0 and eps.item() == 0.0
    # all negative, eps negative: eps -> 0, tau unchanged
    g = torch.tensor([-1.0, -0.5])
    tau, eps = project_tau_eps(g, torch.tensor(-0.3))
    assert eps.item() == 0.0 and torch.equal(tau, g)
    # already in C: unchanged
    tau, eps = project_tau_eps(torch.tensor([0.1, 0.2]), torch.tensor(0.5))
    assert tau.tolist() == pytest.approx([0.1, 0.2]) and eps.item() == 0.5
    # the paper's batch-size-2 rule: tau_i > eps >= 0 -> both (tau_i+eps)/2
    tau, eps = project_tau_eps(torch.tensor([1.0]), torch.tensor(0.2))
    assert tau.item() == pytest.approx(0.6) and eps.item() == pytest.approx(
        0.6)
    # ties at the threshold: all tied entries move together
    tau, eps = project_tau_eps(torch.tensor([2.0, 2.0, 0.0]),
                               torch.tensor(0.5))
    assert eps.item() == pytest.approx(4.5 / 3)
    assert tau.tolist() == pytest.approx([1.5, 1.5, 0.0])


def test_divisor_is_k_plus_one_not_k():
    """The paper's printed divisor k* does not give the projection."""
    gamma, delta = np.array([1.0]), 0.0
    tau, eps = project_tau_eps(torch.tensor(gamma),
                               torch.tensor(delta, dtype=D))
    assert eps.item() == pytest.approx(0.5)                # (0 + 1) / 2
    paper_eps = (delta + gamma[0]) / 1                     # divisor k* = 1
    paper = ((min(gamma[0], paper_eps) - gamma[0])**2 +
             (paper_eps - delta)**2)
    ours = ((tau.numpy() - gamma)**2).sum() + (eps.item() - delta)**2
    assert ours < paper


def test_batched_rows_and_dtypes():
    g = torch.Generator().manual_seed(0)
    tau = torch.randn(2, 3, 5, generator=g, dtype=D)
    tau[0, 0, :2] = 0.7                                     # ties
    eps = torch.randn(2, 3, generator=g, dtype=D)
    bt, be = project_tau_eps(tau, eps)
    assert bt.shape == tau.shape and be.shape == eps.shape
    for i in range(2):
        for j in range(3):
            t1, e1 = project_tau_eps(tau[i, j], eps[i, j])
            torch.testing.assert_close(bt[i, j], t1, rtol=0, atol=1e-15)
            torch.testing.assert_close(be[i, j], e1, rtol=0, atol=1e-15)
    # scalar eps broadcast over rows
    bt2, be2 = project_tau_eps(tau[0], torch.tensor(0.1, dtype=D))
    assert be2.shape == (3, )
    # half precision: computed in float32, returned in the input dtype
    th, eh = project_tau_eps(tau[0, 0].half(), eps[0, 0].half())
    assert th.dtype == torch.float16 and eh.dtype == torch.float16
    t32, e32 = project_tau_eps(tau[0, 0].half().float(),
                               eps[0, 0].half().float())
    torch.testing.assert_close(th.float(), t32, rtol=1e-3, atol=1e-3)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=0, max_size=12),
       st.floats(-5, 5))
def test_property_projection(values, delta):
    """In C, idempotent, and the variational inequality of a projection."""
    x = torch.tensor(values, dtype=D)
    d = torch.tensor(delta, dtype=D)
    tau, eps = project_tau_eps(x, d)
    assert eps.item() >= 0 and (tau <= eps + 1e-12).all()
    t2, e2 = project_tau_eps(tau, eps)
    torch.testing.assert_close(t2, tau, rtol=0, atol=1e-12)
    torch.testing.assert_close(e2, eps, rtol=0, atol=1e-12)
    # <x - P(x), z - P(x)> <= 0 for points z of C
    g = torch.Generator().manual_seed(len(values))
    for _ in range(5):
        ez = torch.rand((), generator=g, dtype=D) * 5
        tz = ez - torch.rand(x.shape, generator=g, dtype=D) * 5
        inner = ((x - tau) * (tz - tau)).sum() + (d - eps) * (ez - eps)
        assert inner.item() <= 1e-9
