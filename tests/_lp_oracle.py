"""The paper's F-beta / IoU LP solved by HiGHS: the one oracle of the tests.

Used by tests/test_ops/test_fractional_lp.py and the loss tests under
tests/test_models/test_losses/ (importable because tests/ holds the root
conftest.py, which pytest puts on sys.path).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linprog


def highs_lp(fp, fn, b2=1.0, wp=None, wn=None, a=0.0):
    """HiGHS on ``min a sum w tau + b2 n eps + sum w phi`` (the original
    program: ``tau_i <= eps``, ``tau_i <= f_i``, ``sum w tau = 1``,
    ``phi_j >= eps + f_j``, ``phi, eps >= 0``).

    Variables ``x = [tau (P), eps, phi (Q)]``. Returns the scipy result.
    """
    fp, fn = np.asarray(fp, float), np.asarray(fn, float)
    P, Q = len(fp), len(fn)
    wp = np.ones(P) if wp is None else np.asarray(wp, float)
    wn = np.ones(Q) if wn is None else np.asarray(wn, float)
    nv = P + 1 + Q
    c = np.zeros(nv)
    c[:P] = a * wp
    c[P] = b2 * wp.sum()
    c[P + 1:] = wn
    A, b = [], []
    for i in range(P):          # tau_i - eps <= 0 ; tau_i <= f_i
        r = np.zeros(nv)
        r[i], r[P] = 1, -1
        A.append(r)
        b.append(0.0)
        r = np.zeros(nv)
        r[i] = 1
        A.append(r)
        b.append(fp[i])
    for j in range(Q):          # eps - phi_j <= -f_j
        r = np.zeros(nv)
        r[P], r[P + 1 + j] = 1, -1
        A.append(r)
        b.append(-fn[j])
    a_eq = np.zeros((1, nv))
    a_eq[0, :P] = wp
    bounds = [(None, None)] * P + [(0, None)] + [(0, None)] * Q
    return linprog(c, A_ub=np.array(A) if A else None,
                   b_ub=np.array(b) if b else None, A_eq=a_eq, b_eq=[1.0],
                   bounds=bounds, method='highs')


def lp_value(pos, neg, b2=1.0):
    """``(V, eps*)`` of the LP, ``(inf, inf)`` when it is infeasible."""
    res = highs_lp(pos, neg, b2)
    P = len(pos)
    return (res.fun, res.x[P]) if res.status == 0 else (math.inf, math.inf)
