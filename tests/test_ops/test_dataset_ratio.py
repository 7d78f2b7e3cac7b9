"""segreg.ops.dataset_ratio: the running ratio's estimator against the
gradient of the full-dataset bound (autograd over every batch at once)."""
from __future__ import annotations

import pytest
import torch

from segreg.ops import (dataset_ratio_terms, hinge_counts, ratio_parts,
                        running_sums)


def test_running_sums_is_the_mean_then_an_exponential_average():
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(30, 3, 4, generator=g, dtype=torch.float64)
    u = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(10):  # 1 / t >= gamma_min: the exact running mean
        u = running_sums(u, xs[t], t + 1, gamma_min=0.1)
    torch.testing.assert_close(u, xs[:10].mean(0))
    ref = u.clone()
    for t in range(10, 30):  # then u <- 0.9 u + 0.1 x
        u = running_sums(u, xs[t], t + 1, gamma_min=0.1)
        ref = 0.9 * ref + 0.1 * xs[t]
    torch.testing.assert_close(u, ref)


def _dataset(seed, K=5, C=4, spread=2.0):
    """K batches of logits (leaves) and labels; class 3 absent from the
    first two batches, class 1 with weak scores (a negative tp sum)."""
    g = torch.Generator().manual_seed(seed)
    zs, ys = [], []
    for k in range(K):
        y = torch.randint(0, C, (2, 5, 6), generator=g)
        if k < 2:
            y[y == 3] = 0
        y[0, 0, :2] = 255
        z = torch.randn(2, C, 5, 6, generator=g, dtype=torch.float64) * spread
        z = z + 3.0 * torch.nn.functional.one_hot(
            y.clamp(max=C - 1), C).permute(0, 3, 1, 2)
        z[:, 1] -= 6.0
        zs.append(z.requires_grad_())
        ys.append(y)
    return zs, ys


@pytest.mark.parametrize('metric,beta', [('iou', 1.0), ('fbeta', 2.0)])
@pytest.mark.parametrize('seed', [0, 1])
def test_mean_direction_over_an_epoch_is_the_dataset_gradient(seed, metric,
                                                              beta):
    """With ``u`` the exact mean of the batch sums, the batches' gradients
    of ``mean_c term_c`` sum (over the epoch, divided by K) to the gradient
    of the full-dataset ``mean_c (1 - P_c / Q_c)``; the value is that
    bound."""
    zs, ys = _dataset(seed)
    K = len(zs)
    counts = [hinge_counts(z, y) for z, y in zip(zs, ys)]
    tp = sum(c.tp for c in counts)
    fp = sum(c.fp for c in counts)
    n = sum(c.n for c in counts)
    p, q = ratio_parts(tp, fp, n, tp, beta, metric)
    assert float(tp[1].detach()) < 0  # the frozen branch is exercised
    full = (1.0 - p / q).mean()
    g_full = torch.autograd.grad(full, zs)
    u = torch.zeros(3, 4, dtype=torch.float64)
    for t, c in enumerate(counts):
        u = running_sums(u, torch.stack(c).detach(), t + 1, gamma_min=1e-3)
    for k, (z, y) in enumerate(zip(zs, ys)):
        tp_k, fp_k, n_k = hinge_counts(z, y)
        r = dataset_ratio_terms(tp_k, fp_k, n_k, u, beta, metric)
        assert r.seen.all()
        torch.testing.assert_close(r.term.mean(), full.detach())
        torch.testing.assert_close(r.bound, (p / q).detach())
        g_k, = torch.autograd.grad(r.term.mean(), z)
        torch.testing.assert_close(g_k / K, g_full[k], rtol=1e-9, atol=1e-12)


def test_unseen_classes_have_no_term():
    tp = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    fp = torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([4.0, 0.0], dtype=torch.float64)
    r = dataset_ratio_terms(tp, fp, n, torch.stack([tp, fp, n]).detach())
    assert r.seen.tolist() == [True, False]
    assert float(r.bound[0]) == pytest.approx(2.0 / 5.0)
    assert float(r.bound[1]) == 0.0
