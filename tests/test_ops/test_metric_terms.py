"""segreg.ops.metric_terms and the class-wise rates against numpy loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segreg.ops import (classwise_hinge_counts, hinge_rates, metric_term,
                        persistent_dual_lagrangian, projected_dual_step,
                        softmax_log_odds, targeted_hinge_rates)

PHI = {'hinge': lambda t: np.maximum(0.0, t),
       'square': lambda t: np.maximum(0.0, t)**2,
       'logistic': lambda t: np.log1p(np.exp(t))}


@pytest.mark.parametrize('kind', ['hinge', 'square', 'logistic'])
@pytest.mark.parametrize('weighted', [False, True])
def test_classwise_hinge_counts_match_a_loop(kind, weighted):
    torch.manual_seed(0)
    C = 4
    x = torch.randn(2, C, 5, 3, dtype=torch.float64) * 2
    y = torch.randint(0, C, (2, 5, 3))
    y[1, 0] = 255
    w = torch.rand(2, 5, 3, dtype=torch.float64) if weighted else None
    tp, fp, n = classwise_hinge_counts(x, y, w, kind)
    s = np.moveaxis(softmax_log_odds(x).numpy(), 1, -1).reshape(-1, C)
    lab = y.numpy().reshape(-1)
    wt = np.ones(lab.size) if w is None else w.numpy().reshape(-1)
    for c in range(C):
        ref_tp = ref_fp = ref_n = 0.0
        for i in range(lab.size):
            if lab[i] == 255:
                continue
            if lab[i] == c:
                ref_tp += wt[i] * (1 - PHI[kind](1 - s[i, c]))
                ref_n += wt[i]
            else:
                ref_fp += wt[i] * PHI[kind](1 + s[i, c])
        assert tp[c].item() == pytest.approx(ref_tp, rel=1e-12, abs=1e-12)
        assert fp[c].item() == pytest.approx(ref_fp, rel=1e-12)
        assert n[c].item() == pytest.approx(ref_n, rel=1e-12)


def test_classwise_hinge_counts_gradcheck():
    torch.manual_seed(1)
    x = (torch.randn(1, 3, 3, 3, dtype=torch.float64) * 2).requires_grad_()
    y = torch.randint(0, 3, (1, 3, 3))
    assert torch.autograd.gradcheck(
        lambda t: torch.stack(classwise_hinge_counts(t, y)[:2]), (x, ),
        eps=1e-6, atol=1e-6)


@pytest.mark.parametrize('kind', ['log', 'inverse'])
def test_metric_term_is_c1_at_the_floor(kind):
    m0 = 0.05
    m = torch.tensor([m0 - 1e-7, m0, m0 + 1e-7, 0.5, -1.0],
                     dtype=torch.float64, requires_grad=True)
    t = metric_term(m, kind, m0)
    g, = torch.autograd.grad(t.sum(), m)
    assert t[0].item() == pytest.approx(t[2].item(), abs=1e-4)
    assert g[0].item() == pytest.approx(g[2].item(), rel=1e-4)
    main = -np.log(0.5) if kind == 'log' else 1 / 0.5 - 1
    assert t[3].item() == pytest.approx(main)
    assert torch.isfinite(t).all()
    torch.testing.assert_close(metric_term(m, 'bound'), 1 - m)
    with pytest.raises(ValueError, match='term'):
        metric_term(m, 'cubic')


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
