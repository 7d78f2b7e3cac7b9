"""class_sum / class_gather: laned per-class sums against index_add.

Oracle: ``torch.zeros(C).index_add_(0, y, v)`` (the plain per-class sum) and
``table.index_select(0, y)``, with autograd's own gradients of both; float64
gradcheck. Labels as segmentation gives them (long runs of one class),
random, a single class, and lengths that are not a multiple of the lanes.
"""
from __future__ import annotations

import pytest
import torch

from segreg.ops import class_gather, class_index, class_sum
from segreg.ops.class_sums import LANES, split_class_sums



def _labels(kind: str, n: int, bins: int, g: torch.Generator):
    if kind == 'runs':  # blobs: runs of up to 40 equal labels
        y = torch.randint(0, bins, (n // 7 + 1, ), generator=g)
        return y.repeat_interleave(
            torch.randint(1, 40, (y.numel(), ), generator=g))[:n]
    if kind == 'one':
        return torch.full((n, ), bins - 1, dtype=torch.long)
    return torch.randint(0, bins, (n, ), generator=g)


@pytest.mark.parametrize('kind', ['runs', 'random', 'one'])
@pytest.mark.parametrize('n,bins', [(0, 3), (1, 1), (LANES + 3, 2),
                                    (5003, 13), (2000, 171)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_sum_and_gather_equal_index_add(kind, n, bins, dtype):
    g = torch.Generator().manual_seed(n + bins)
    y = _labels(kind, n, bins, g)
    n = y.numel()
    idx = class_index(y.view(-1, 1) if n else y, bins)  # any shape
    assert torch.equal(idx.labels, y)
    assert torch.equal(idx.laned // LANES, y)  # each entry in its class
    v = torch.randn(n, generator=g, dtype=dtype, requires_grad=True)
    t = torch.randn(bins, generator=g, dtype=dtype, requires_grad=True)
    out = class_sum(v, idx)
    ref = torch.zeros(bins, dtype=dtype).index_add(0, y, v)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else {}
    torch.testing.assert_close(out, ref, **tol)
    gat = class_gather(t, idx)
    assert torch.equal(gat, t.index_select(0, y))
    # backward of each is the other: against autograd's own
    gs = torch.randn(bins, generator=g, dtype=dtype)
    gn = torch.randn(n, generator=g, dtype=dtype)
    got = torch.autograd.grad((out * gs).sum() + (gat * gn).sum(), (v, t))
    want = torch.autograd.grad((ref * gs).sum() +
                               (t.index_select(0, y) * gn).sum(), (v, t))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)
    # without autograd: the same values
    torch.testing.assert_close(class_sum(v.detach(), idx), out.detach())
    assert torch.equal(class_gather(t.detach(), idx), gat.detach())


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    y = _labels('runs', 37, 4, g)
    idx = class_index(y, 4)
    v = torch.randn(37, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v, t: (class_sum(v * class_gather(t, idx), idx), ), (v, t))


def test_long_runs_are_spread_over_lanes():
    """The point of the lanes: a run of one label lands in LANES bins."""
    y = torch.zeros(64, dtype=torch.long)
    idx = class_index(y, 1)
    assert torch.equal(torch.bincount(idx.laned),
                       torch.full((LANES, ), 64 // LANES))


@pytest.mark.parametrize('kind', ['runs', 'random'])
def test_split_sums_equal_masked_index_add(kind):
    g = torch.Generator().manual_seed(7)
    bins, n = 6, 3001
    y = _labels(kind, n, bins, g)
    n = y.numel()
    mask = torch.rand(n, generator=g) < 0.3
    a = torch.rand(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    out = split_class_sums((a, b), class_index(y, bins), mask)
    assert out.shape == (2, 2, bins)
    for k, v in enumerate((a, b)):
        for half, m in enumerate((~mask, mask)):
            ref = torch.zeros(bins, dtype=v.dtype).index_add(0, y, v * m)
            torch.testing.assert_close(out[k, half], ref)
