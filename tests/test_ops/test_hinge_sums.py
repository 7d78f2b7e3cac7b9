"""segreg.ops.hinge_sums: the fused op against its plain reference and loops.

Oracles: a numpy loop over pixels and classes (values), the plain-autograd
reference (values and gradients, float64), the analytic Jacobian of the
log-odds written entry by entry (gradients where the reference's autograd
cancels), and gradcheck.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segreg.ops import (classwise_hinge_bound, hinge_counts, log_odds_hinge,
                        log_odds_hinge_reference, own_log_odds,
                        softmax_log_odds)


def _batch(B=2, C=5, H=6, W=7, dtype=torch.float64, seed=0, spread=3.0,
           weighted=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, C, H, W, generator=g, dtype=dtype) * spread
    y = torch.randint(0, C, (B, H, W), generator=g)
    y[0, 0, :3] = 255  # ignored
    w = None
    if weighted:
        w = torch.rand(B, H, W, generator=g, dtype=dtype)
        w[1, 2, :2] = 0.0  # left out
    return z, y, w


def _loop(z, y, w, t, u):
    """own and fp by a numpy loop over pixels and classes."""
    z, y = z.double().numpy(), y.numpy()
    B, C = z.shape[:2]
    w = np.ones(y.shape) if w is None else w.double().numpy()
    t = np.broadcast_to(np.asarray(t, dtype=float), (C, ))
    u = np.broadcast_to(np.asarray(u, dtype=float), (C, ))
    own, fp = np.zeros(y.shape), np.zeros(C)
    for idx in np.ndindex(*y.shape):
        b, rest = idx[0], idx[1:]
        logits = z[(b, slice(None)) + rest]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        s = np.log(p) - np.log1p(-p)
        if not (0 <= y[idx] < C) or w[idx] <= 0:
            continue
        own[idx] = s[y[idx]]
        for c in range(C):
            if c != y[idx]:
                fp[c] += w[idx] * max(0.0, u[c] * s[c] + t[c])
    return own, fp


@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('op', [log_odds_hinge, log_odds_hinge_reference])
def test_values_equal_a_numpy_loop(op, weighted):
    z, y, w = _batch(weighted=weighted)
    t = torch.tensor([1.0, 0.5, 2.0, 0.0, 1.5], dtype=torch.float64)
    u = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    own, fp = op(z, y, w, t, u)
    own_ref, fp_ref = _loop(z, y, w, t, u)
    keep = (y != 255).numpy() & (np.ones(y.shape) if w is None else
                                 (w > 0).numpy()).astype(bool)
    np.testing.assert_allclose(own.numpy()[keep], own_ref[keep], rtol=1e-10)
    np.testing.assert_allclose(fp.numpy(), fp_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('seed', range(4))
def test_fused_equals_the_reference_in_float64(seed, weighted):
    """Values and gradients in logits, thresholds and scales."""
    z, y, w = _batch(seed=seed, weighted=weighted, spread=1.0 + seed)
    g = torch.Generator().manual_seed(seed + 100)
    C = z.shape[1]
    t0 = torch.rand(C, generator=g, dtype=torch.float64) * 2
    u0 = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    g_own = torch.randn(y.shape, generator=g, dtype=torch.float64)
    g_fp = torch.randn(C, generator=g, dtype=torch.float64)
    out = []
    for op in (log_odds_hinge_reference, log_odds_hinge):
        x, t, u = (v.clone().requires_grad_() for v in (z, t0, u0))
        own, fp = op(x, y, w, t, u)
        loss = (own * g_own).sum() + (fp * g_fp).sum()
        out.append((own, fp) + torch.autograd.grad(loss, (x, t, u)))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def _jacobian_oracle(z, G):
    """dL/dz from dL/ds entry by entry: ds_c/dz_k = 1 (c = k), else
    -p_k / (1 - p_c), with 1 - p_c from expm1 (no cancellation); log p as
    the op takes it (torch's log-softmax)."""
    lp = torch.log_softmax(z.double(), 1).numpy()
    G = G.double().numpy()
    out = np.zeros_like(lp)
    for idx in np.ndindex(lp.shape[0], *lp.shape[2:]):
        sl = (idx[0], slice(None)) + idx[1:]
        p, q = np.exp(lp[sl]), -np.expm1(lp[sl])
        g = G[sl]
        for k in range(lp.shape[1]):
            out[sl][k] = g[k] - p[k] * sum(g[c] / q[c]
                                           for c in range(lp.shape[1])
                                           if c != k)
    return out


def test_gradient_of_confident_pixels_equals_the_jacobian():
    """Logits 10 apart (1 - p ~ 1e-9): the plain reference cancels there,
    the fused op writes the exact form."""
    z, y, _ = _batch(C=4, H=3, W=3, spread=10.0, seed=3)
    x = z.clone().requires_grad_()
    own, fp = log_odds_hinge(x, y, None, 1.0, 1.0)
    g_own = torch.randn(y.shape, dtype=torch.float64)
    loss = (own * g_own).sum() + fp.sum()
    grad, = torch.autograd.grad(loss, x)
    # dL/ds: the own entries and the active negatives (u s + t > 0)
    s = softmax_log_odds(z)
    C = z.shape[1]
    valid = (y >= 0) & (y < C)
    onehot = torch.nn.functional.one_hot(y.clamp(0, C - 1), C).permute(
        0, 3, 1, 2).bool() & valid.unsqueeze(1)
    G = torch.where(onehot, g_own.unsqueeze(1), 0.0) + torch.where(
        ~onehot & valid.unsqueeze(1) & (s + 1 > 0), 1.0, 0.0)
    np.testing.assert_allclose(grad.numpy(), _jacobian_oracle(z, G),
                               rtol=1e-7, atol=1e-9)


def test_gradcheck_in_logits_threshold_and_scale():
    z, y, w = _batch(B=2, C=4, H=3, W=3, weighted=True, spread=2.0)
    t = torch.tensor([1.0, 0.3, 2.0, 0.7], dtype=torch.float64)
    u = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    args = tuple(v.clone().requires_grad_() for v in (z, t, u))
    assert torch.autograd.gradcheck(
        lambda a, b, c: torch.cat([o.reshape(-1) for o in log_odds_hinge(
            a, y, w, b, c)]), args)


def test_clamped_scores_get_no_gradient():
    """``log p`` rounds to 0 (p = 1): the entry is clamped, as in the
    reference, and passes no gradient."""
    z = torch.zeros(1, 3, 1, 2, dtype=torch.float64)
    z[0, 0, 0, 0] = 60.0
    y = torch.tensor([[[0, 1]]])
    x = z.clone().requires_grad_()
    own, _ = log_odds_hinge(x, y)
    own[0, 0, 0].backward()
    assert torch.count_nonzero(x.grad) == 0
    assert own[0, 0, 0] == softmax_log_odds(z)[0, 0, 0, 0]


def test_ignored_only_batch_and_trailing_shapes():
    z = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.full((2, 4), 255)
    own, fp = log_odds_hinge(z, y)
    assert torch.count_nonzero(own) == 0 and torch.count_nonzero(fp) == 0
    (own.sum() + fp.sum()).backward()
    assert torch.count_nonzero(z.grad) == 0
    # a 3-D volume: the same sums as its flattened image
    z3, y3, _ = _batch(H=4, W=6)
    a = log_odds_hinge(z3.reshape(2, 5, 2, 2, 6), y3.reshape(2, 2, 2, 6))
    b = log_odds_hinge(z3, y3)
    torch.testing.assert_close(a.fp, b.fp)


def test_float32_matches_float64():
    z, y, w = _batch(weighted=True)
    a = hinge_counts(z.float(), y, w.float())
    b = hinge_counts(z, y, w)
    for x, r in zip(a, b):
        assert x.dtype == torch.float32
        torch.testing.assert_close(x.double(), r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('weighted', [False, True])
def test_hinge_counts_are_the_direct_bounds_counts(weighted):
    """hinge_counts (fused and reference) equals classwise_hinge_bound on
    the log-odds, and bounds the counts of ``s > 0`` from the right side:
    tp <= TP, fp >= FP."""
    z, y, w = _batch(weighted=weighted)
    fused = hinge_counts(z, y, w)
    plain = hinge_counts(z, y, w, reference=True)
    hb = classwise_hinge_bound(softmax_log_odds(z), y, w, metric='iou')
    for a, b, c in zip(fused, plain, (hb.tp_l, hb.fp_u, hb.n_pos)):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)
    s = softmax_log_odds(z)
    C = z.shape[1]
    ww = torch.ones(y.shape, dtype=z.dtype) if w is None else w
    ww = torch.where(y == 255, 0.0, ww)
    pos = torch.nn.functional.one_hot(y.clamp(0, C - 1), C).permute(
        0, 3, 1, 2).to(z.dtype) * ww.unsqueeze(1)
    neg = (1 - torch.nn.functional.one_hot(y.clamp(0, C - 1), C).permute(
        0, 3, 1, 2).to(z.dtype)) * ww.unsqueeze(1)
    TP = (pos * (s > 0)).sum((0, 2, 3))
    FP = (neg * (s > 0)).sum((0, 2, 3))
    assert bool((fused.tp <= TP + 1e-12).all())
    assert bool((fused.fp >= FP - 1e-12).all())


def test_own_log_odds_equals_the_gathered_scores():
    z, y, _ = _batch()
    s = softmax_log_odds(z)
    ref = s.gather(1, y.clamp(0, 4).unsqueeze(1)).squeeze(1)
    ref = torch.where(y == 255, 0.0, ref)
    torch.testing.assert_close(own_log_odds(z, y), ref)
    torch.testing.assert_close(log_odds_hinge(z, y).own, ref)
