"""newton_threshold: the water-filling threshold without a sort.

Oracles: HiGHS on the paper's LP (tests/_lp_oracle.py: its optimal eps is
the smallest feasible one, clamped at 0), and the segmented sort
(``segreg.ops.classwise_threshold``) for values and gradients; the
distributed form against one process is in
tests/test_models/test_losses/test_dual_iou_dist.py.
"""
from __future__ import annotations

import math

import pytest
import torch

from _lp_oracle import lp_value
from segreg.ops import classwise_threshold, newton_threshold


def _case(P, C, seed, dtype=torch.float64, ties=False):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (P, ), generator=g)
    y[:P // 10] = 255  # ignored
    n = torch.bincount(y.clamp(max=C), minlength=C + 1)[y.clamp(max=C)]
    f = (torch.randn(P, generator=g, dtype=dtype) * 2 + 1) * 3 / n.clamp(
        min=1).to(dtype)
    f = torch.where(y == 0, f * 0.05, f)  # class 0: an infeasible LP
    if ties:
        f = (f * 4).round() / 4  # many equal scores
    w = torch.rand(P, generator=g, dtype=dtype) + 0.1
    w[1::7] = 0.0  # left out
    return f, y, w


def test_threshold_equals_highs_lp():
    g = torch.Generator().manual_seed(0)
    for trial in range(6):
        pos = (torch.rand(7, generator=g, dtype=torch.float64) * 0.6 -
               0.1).tolist()
        neg = torch.randn(5, generator=g, dtype=torch.float64).tolist()
        thr = newton_threshold(torch.tensor(pos, dtype=torch.float64),
                               torch.zeros(7, dtype=torch.long), 1)
        _, eps_lp = lp_value(pos, neg)
        if math.isinf(eps_lp):
            assert not thr.feasible[0] and math.isinf(thr.eps[0])
        else:
            assert thr.feasible[0]
            assert max(float(thr.eps[0]), 0.0) == pytest.approx(eps_lp,
                                                                abs=1e-7)


@pytest.mark.parametrize('P,C,ties', [(50, 3, False), (400, 5, True),
                                      (3000, 12, False), (2000, 171, False)])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_value_and_gradient_equal_the_sort(P, C, ties, dtype):
    f, y, w = _case(P, C, seed=P + C, dtype=dtype, ties=ties)
    f.requires_grad_()
    ref = classwise_threshold(f, y, C, w)
    new = newton_threshold(f, y, C, w)
    assert torch.equal(new.feasible, ref.feasible)
    assert ref.feasible.any() and not ref.feasible[0]
    fe = ref.feasible
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(new.eps[fe], ref.eps[fe], rtol=tol, atol=tol)
    assert torch.isinf(new.eps[~fe]).all()
    torch.testing.assert_close(new.n_pos, ref.n_pos)
    torch.testing.assert_close(new.total, ref.total)
    coef = torch.linspace(0.5, 2.0, int(fe.sum()), dtype=dtype)
    g_ref, = torch.autograd.grad((ref.eps[fe] * coef).sum(), f)
    g_new, = torch.autograd.grad((new.eps[fe] * coef).sum(), f)
    torch.testing.assert_close(g_new, g_ref, rtol=tol, atol=tol)


def test_few_iterations_at_training_size():
    """At the demo batch's size (73 728 positives, 12 classes) the loop
    ends after a handful of active-set evaluations (6 measured)."""
    f, y, w = _case(8 * 96 * 96, 12, seed=1, dtype=torch.float32)
    thr = newton_threshold(f, y, 12, w)
    assert thr.feasible[1:].all()
    assert thr.iterations <= 12, thr.iterations


@pytest.mark.parametrize('reduce', [None, 'doubled'])
def test_settled_at_the_first_step_equals_the_sort(reduce):
    """Every positive of a feasible class above ``1 / n_c``: the check
    before the loop returns ``eps = 1 / n`` with one active-set
    evaluation; value, zero gradient and the infeasible class as the
    sort's (two identical ranks through the reduce, too)."""
    f, y, w = _case(900, 4, seed=5)
    n = torch.bincount(y.clamp(max=4), w, minlength=5)[y.clamp(max=4)]
    f = (f.abs() + 1.5 / n.clamp(min=1e-3)).detach()   # all > 1/n_c
    f = torch.where(y == 0, torch.full_like(f, 1e-4), f)  # still infeasible
    f.requires_grad_()
    double = (lambda t: t * 2) if reduce else None
    new = newton_threshold(f, y, 4, w, all_reduce=double,
                           all_reduce_grad=double)
    k = 2 if reduce else 1
    ref = classwise_threshold(torch.cat([f] * k), torch.cat([y] * k), 4,
                              torch.cat([w] * k))
    assert new.iterations == 2  # eps_1 = 1 / n, and its confirmation
    assert torch.equal(new.feasible, ref.feasible)
    assert new.feasible[1:].all() and not new.feasible[0]
    fe = ref.feasible
    torch.testing.assert_close(new.eps[fe], ref.eps[fe], rtol=1e-12,
                               atol=1e-12)
    g_new, = torch.autograd.grad(new.eps[fe].sum(), f)
    assert torch.equal(g_new, torch.zeros_like(f))


def test_uses_the_reduce_for_every_class_sum():
    """The reduce sees (..., C + 1) sums only, never per-pixel tensors; with
    a reduce that doubles (two identical ranks) the threshold is that of
    the data concatenated with itself."""
    f, y, w = _case(600, 4, seed=3)
    seen = []

    def doubled(t):
        seen.append(tuple(t.shape))
        return t * 2

    f.requires_grad_()
    two = newton_threshold(f, y, 4, w, all_reduce=doubled,
                           all_reduce_grad=doubled)
    ff = torch.cat([f, f])
    ref = classwise_threshold(ff, torch.cat([y, y]), 4, torch.cat([w, w]))
    fe = ref.feasible
    torch.testing.assert_close(two.eps[fe], ref.eps[fe])
    # the gradient: the sum over the two identical ranks' positives
    coef = torch.arange(1.0, 5.0, dtype=f.dtype)[fe]
    g_two, = torch.autograd.grad((two.eps[fe] * coef).sum(), f)
    g_ref, = torch.autograd.grad((ref.eps[fe] * coef).sum(), ff)
    torch.testing.assert_close(g_two, g_ref[:f.numel()] + g_ref[f.numel():])
    assert g_two.abs().sum() > 0
    # totals (2, C), each Newton step's W_A and S_B (2, C), the closed
    # form's gradient in the backward (C,)
    assert all(s in ((2, 4), (4, )) for s in seen), seen
    assert seen[0] == (2, 4) and seen[-1] == (4, ) and len(seen) > 3


def test_empty_infeasible_and_ignored_inputs():
    e = newton_threshold(torch.zeros(0), torch.zeros(0, dtype=torch.long), 3)
    assert not e.feasible.any() and torch.isinf(e.eps).all()
    # class 0 infeasible (sum f < 1), class 1 feasible, class 2 absent,
    # an ignored entry with a huge score changes nothing
    f = torch.tensor([0.2, 0.3, 0.9, 0.8, 100.0], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 255])
    t = newton_threshold(f, y, 3)
    assert t.feasible.tolist() == [False, True, False]
    assert float(t.eps[1]) == pytest.approx(0.5)  # min(e, .9) + min(e, .8)


def test_a_root_far_from_the_first_steps_equals_the_sort():
    """Class 0's scores [-10, 0.5, 0.5, 100] put the root (10) far from
    eps_2 = 11/3: several steps, the sort's threshold and gradient."""
    g = torch.Generator().manual_seed(11)
    C, P = 6, 4000
    f = torch.rand(P, generator=g, dtype=torch.float64) * 3 - 0.2
    y = torch.randint(1, C, (P, ), generator=g)
    w = torch.rand(P, generator=g, dtype=torch.float64) + 0.5
    f = torch.cat([torch.tensor([-10.0, 0.5, 0.5, 100.0],
                                dtype=torch.float64), f]).requires_grad_()
    y = torch.cat([torch.zeros(4, dtype=torch.long), y])
    w = torch.cat([torch.ones(4, dtype=torch.float64), w])
    new = newton_threshold(f, y, C, w)
    ref = classwise_threshold(f, y, C, w)
    assert new.iterations > 2
    assert torch.equal(new.feasible, ref.feasible) and new.feasible.all()
    torch.testing.assert_close(new.eps, ref.eps)
    assert float(new.eps[0].detach()) == pytest.approx(10.0)
    gn, = torch.autograd.grad((new.eps * torch.arange(1.0, C + 1)).sum(), f)
    gr, = torch.autograd.grad((ref.eps * torch.arange(1.0, C + 1)).sum(), f)
    torch.testing.assert_close(gn, gr)
