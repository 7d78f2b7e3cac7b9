"""segreg.ops.metric_terms and the class-wise rates against their definitions."""
from __future__ import annotations

import torch

from segreg.ops import (hinge_rates, persistent_dual_lagrangian,
                        projected_dual_step, targeted_hinge_rates)


def test_persistent_dual_lagrangian_definition():
    eps = torch.tensor([0.5, 2.0])
    mu = torch.tensor([1.5, 0.0])
    hit = torch.tensor([3.0, 4.0])
    fp = torch.tensor([6.0, 1.0])
    n = torch.tensor([4.0, 4.0])
    nbar = torch.tensor([3.0, 5.0])
    out = persistent_dual_lagrangian(eps, mu, hit, fp, n, nbar, 2.0, 'fbeta')
    primal = 4.0 * eps + fp / nbar
    slack = 1 - hit / n
    torch.testing.assert_close(out.value, primal + mu * slack)
    torch.testing.assert_close(out.bound, 5.0 / (1.0 + primal))
    iou = persistent_dual_lagrangian(eps, mu, hit, fp, n, nbar)
    torch.testing.assert_close(iou.bound, 1.0 / (eps + fp / nbar))


def test_projected_dual_step():
    d = torch.tensor([1.0, 0.1, 2.0])
    s = torch.tensor([0.5, -1.0, 3.0])
    torch.testing.assert_close(projected_dual_step(d, s, 0.2),
                               torch.tensor([1.1, 0.0, 2.6]))
    torch.testing.assert_close(
        projected_dual_step(d, s, 0.2, torch.tensor([True, True, False])),
        torch.tensor([1.1, 0.0, 2.0]))
    torch.testing.assert_close(projected_dual_step(d, s, 0.2, lower=None),
                               torch.tensor([1.1, -0.1, 2.6]))


def test_targeted_rates_are_the_binary_rates_of_each_class():
    torch.manual_seed(2)
    C = 5
    s = torch.randn(2, C, 4, 4, dtype=torch.float64)
    y = torch.randint(0, C, (2, 4, 4))
    y[0, 0] = 255
    w = torch.rand(2, 4, 4, dtype=torch.float64)
    targets = torch.tensor([4, 1])
    b = torch.randn(2, 3, dtype=torch.float64)
    h = targeted_hinge_rates(s, y, targets, b, w)
    for k, t in enumerate(targets.tolist()):
        f = s[:, t]
        pos, neg = (y == t), (y != t) & (y != 255)
        ref = hinge_rates(f[pos], f[neg], b[k], w[pos], w[neg])
        torch.testing.assert_close(h.tp_l[k], ref.tp_l)
        torch.testing.assert_close(h.fp_u[k], ref.fp_u)
        torch.testing.assert_close(h.n_pos[k], ref.n_pos)
        torch.testing.assert_close(h.n_neg[k], ref.n_neg)
