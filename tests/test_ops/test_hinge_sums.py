"""segreg.ops.hinge_sums against the implementation before issue 17.

The oracle is a frozen copy of today's loss module
(tests/test_models/test_losses/_legacy_dual_metric_loss.py: ``class_scores`` +
``classwise_negative_hinge`` + scatters), plus gradcheck; the registered
forms, built on this op, are compared with the frozen ``DualIoULoss`` /
``DualFbetaLoss`` for every solver and stride.
"""
from __future__ import annotations

import importlib.util
import os.path as osp
import shutil

import pytest
import torch
import torch.nn.functional as F

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.ops import classwise_hinge_bound, classwise_negative_hinge
from segreg.ops.hinge_sums import (hinge_counts, log_odds_clamp,
                                   log_odds_scores, negative_hinge_sums,
                                   positive_hinge_sums)

# torch.compile's CPU backend builds C++ (kernel='compiled')
needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ('c++', 'g++', 'clang++')),
    reason="kernel='compiled' needs a C++ compiler on CPU")
HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ref = _load(osp.join(REPO, 'tests', 'test_models', 'test_losses',
                 '_legacy_dual_metric_loss.py'), 'ref_dual_loss')


def _batch(B=2, C=5, H=6, W=7, dtype=torch.float64, seed=0, extreme=True,
           spread=3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, C, H, W, generator=g, dtype=dtype) * spread
    y = torch.randint(0, C, (B, H, W), generator=g)
    if extreme:
        big = 40.0 if dtype == torch.float64 else 20.0
        z[0, :, 0, 0] = 0.0
        z[0, 0, 0, 0] = big           # log p clamped: no gradient there
        z[0, :, 0, 1] = 0.0           # an exact tie of every class
        z[0, :, 0, 2] = 0.0
        z[0, 1, 0, 2] = 12.0          # very confident, not clamped
        z[1, :, 1, 1] = 0.0
        z[1, 2, 1, 1] = big           # clamped at a negative class
        y[0, 0, :3] = torch.tensor([0, 3, 1])
        y[1, 1, 1] = 0
    y[0, 1, :3] = 255                 # ignored
    w = torch.rand(B, H, W, generator=g, dtype=dtype)
    return z, y, w


def _reference_sums(z, y, w, thr, scale, cap):
    """tp, fp, own-class scores of the pre-issue-17 path."""
    C = z.shape[1]
    s = ref.class_scores(z)
    valid = (y >= 0) & (y < C)
    pw = valid.to(z.dtype) if w is None else torch.where(
        valid, w, torch.zeros_like(w))
    y_neg = torch.where(valid, y, torch.full_like(y, C))
    fp = classwise_negative_hinge(s, y_neg, thr / scale, pw) * scale
    lab = torch.where(valid, y, torch.zeros_like(y))
    s_pos = s.gather(1, lab.unsqueeze(1)).squeeze(1)
    f = s_pos * scale[lab]
    hit = torch.minimum(f, cap[lab])
    tp = torch.zeros(C, dtype=z.dtype).index_add(
        0, lab.reshape(-1), (pw * hit).reshape(-1))
    return tp, fp, s_pos, valid


@pytest.mark.parametrize('kernel', [
    'sparse', pytest.param('compiled', marks=needs_compiler)])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('weighted', [False, True])
def test_sums_and_gradients_equal_the_reference(layout, weighted, kernel):
    """Both kernels of log_odds_scores against the frozen reference."""
    z, y, w = _batch()
    if layout == 'channels_last':
        z = z.contiguous(memory_format=torch.channels_last)
    z.requires_grad_()
    w = w if weighted else None
    C = z.shape[1]
    g = torch.Generator().manual_seed(1)
    thr = (torch.rand(C, generator=g, dtype=z.dtype) + 0.2).requires_grad_()
    scale = (torch.rand(C, generator=g, dtype=z.dtype) + 0.5
             ).requires_grad_()
    cap = (torch.rand(C, generator=g, dtype=z.dtype) + 0.5).requires_grad_()
    g_tp, g_fp = torch.randn(2, C, generator=g, dtype=z.dtype)
    g_pos = torch.randn(y.shape, generator=g, dtype=z.dtype)

    tp0, fp0, sp0, valid = _reference_sums(z, y, w, thr, scale, cap)
    loss0 = (tp0 * g_tp).sum() + (fp0 * g_fp).sum() + \
        (sp0 * g_pos * valid).sum()
    grads0 = torch.autograd.grad(loss0, [z, thr, scale, cap])

    sc = log_odds_scores(z, y, w, kernel=kernel)
    tp1 = positive_hinge_sums(sc, scale, cap)
    fp1 = negative_hinge_sums(sc, thr, scale)
    loss1 = (tp1 * g_tp).sum() + (fp1 * g_fp).sum() + \
        (sc.pos_scores * (g_pos * valid).reshape(-1)).sum()
    grads1 = torch.autograd.grad(loss1, [z, thr, scale, cap])

    torch.testing.assert_close(tp1, tp0, rtol=0, atol=1e-9)
    torch.testing.assert_close(fp1, fp0, rtol=0, atol=1e-9)
    v = valid.reshape(-1)
    torch.testing.assert_close(sc.pos_scores[v], sp0.reshape(-1)[v],
                               rtol=0, atol=1e-9)
    for a, b in zip(grads1, grads0):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    n0 = torch.zeros(C, dtype=z.dtype).index_add(
        0, torch.where(valid, y, 0).reshape(-1),
        (valid.to(z.dtype) if w is None else w * valid).reshape(-1))
    torch.testing.assert_close(sc.n_pos, n0)


def test_clamped_scores_get_no_gradient():
    z = torch.zeros(1, 3, 1, 2, dtype=torch.float64)
    z[0, 0, 0, 0] = 50.0                      # p_0 = 1 - 2e-22: clamped
    z[0, :, 0, 1] = torch.tensor([1.0, 0.0, -1.0])
    z.requires_grad_()
    y = torch.tensor([[[0, 0]]])
    sc = log_odds_scores(z, y)
    s_max, _ = log_odds_clamp(torch.float64)
    assert float(sc.pos_scores[0].detach()) == pytest.approx(s_max, rel=1e-12)
    gz, = torch.autograd.grad(sc.pos_scores[0], z,  # own score, clamped
                              retain_graph=True)
    assert gz.abs().sum() == 0
    gz, = torch.autograd.grad(sc.pos_scores[1], z)  # not clamped
    s_ref = ref.class_scores(z)
    gr, = torch.autograd.grad(s_ref[0, 0, 0, 1], z)
    torch.testing.assert_close(gz, gr, rtol=0, atol=1e-12)


def test_gradcheck_in_logits_threshold_and_scale():
    z, y, w = _batch(B=1, C=4, H=3, W=4, extreme=False, spread=1.5)
    z.requires_grad_()
    thr = torch.tensor([0.7, 1.0, 1.3, 0.4], dtype=torch.float64,
                       requires_grad=True)
    scale = torch.tensor([0.8, 1.2, 1.0, 2.0], dtype=torch.float64,
                         requires_grad=True)

    def f(z, thr, scale):
        sc = log_odds_scores(z, y, w)
        return (negative_hinge_sums(sc, thr, scale),
                positive_hinge_sums(sc, scale, 0.5), sc.pos_scores)

    assert torch.autograd.gradcheck(f, (z, thr, scale))


def test_trailing_shapes_and_ignored_only_batches():
    g = torch.Generator().manual_seed(3)
    for shape in [(3, 4, 10), (2, 4, 3, 2, 2)]:
        z = torch.randn(*shape, generator=g, dtype=torch.float64,
                        requires_grad=True)
        y = torch.randint(0, 4, (shape[0], ) + shape[2:], generator=g)
        y.view(-1)[::3] = 255
        tp, fp, n = hinge_counts(z, y)
        hb = classwise_hinge_bound(ref.class_scores(z), y)
        torch.testing.assert_close(torch.stack([tp, fp, n]),
                                   torch.stack([hb.tp_l, hb.fp_u, hb.n_pos]))
    z = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    tp, fp, n = hinge_counts(z, torch.full((1, 2, 2), 255))
    assert float(n.sum()) == 0 and float(fp.detach().sum()) == 0
    (tp.sum() + fp.sum()).backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize('weighted', [True, False])
def test_checked_inputs_give_the_same_sums(weighted):
    """``checked=True`` (labels and weight as a PixelBatch holds them: C at
    ignored pixels, weight 0 there, None only if every pixel is valid)
    gives the unchecked call's sums and gradients."""
    z, y, w = _batch(extreme=True)
    C = z.shape[1]
    if not weighted:
        y = y.clamp(max=C - 1)
        w = None
    valid = y < C
    labels = torch.where(valid, y, torch.full_like(y, C))
    pw = None if w is None else torch.where(valid, w, torch.zeros_like(w))
    out = []
    for checked in (False, True):
        x = z.clone().requires_grad_()
        tp, fp, n = hinge_counts(x, labels if checked else y,
                                 pw if checked else w, checked=checked)
        g, = torch.autograd.grad((tp - 0.3 * fp).sum(), x)
        out.append((torch.stack([tp, fp, n]).detach(), g))
    torch.testing.assert_close(out[1][0], out[0][0], rtol=0, atol=0)
    torch.testing.assert_close(out[1][1], out[0][1], rtol=0, atol=0)


def test_hinge_counts_is_the_direct_bound_of_classwise_hinge_bound():
    z, y, w = _batch(extreme=False)
    z.requires_grad_()
    tp, fp, n = hinge_counts(z, y, w)
    hb = classwise_hinge_bound(ref.class_scores(z), y, w)
    torch.testing.assert_close(tp, hb.tp_l)
    torch.testing.assert_close(fp, hb.fp_u)
    torch.testing.assert_close(n, hb.n_pos)
    g1, = torch.autograd.grad((tp - 0.3 * fp).sum(), z)
    g0, = torch.autograd.grad((hb.tp_l - 0.3 * hb.fp_u).sum(), z)
    torch.testing.assert_close(g1, g0)
    with pytest.raises(ValueError, match="surrogate='hinge' only"):
        hinge_counts(z, y, surrogate='square')


def test_float32_at_least_as_accurate_as_the_reference():
    """Confident logits (p near 1): float32 errors vs the float64 truth."""
    z64, y, w = _batch(B=2, C=6, H=16, W=16, extreme=False, spread=2.0)
    z64 = z64 + 9.0 * F.one_hot(torch.where(y < 6, y, 0), 6
                                ).permute(0, 3, 1, 2)
    errs = {}
    for name in ('ref', 'new'):
        out = {}
        for dt in (torch.float64, torch.float32):
            z = z64.to(dt).requires_grad_()
            if name == 'ref':
                hb = classwise_hinge_bound(ref.class_scores(z), y, w.to(dt))
                tp, fp = hb.tp_l, hb.fp_u
            else:
                tp, fp, _ = hinge_counts(z, y, w.to(dt))
            gz, = torch.autograd.grad((tp - 0.1 * fp).sum(), z)
            out[dt] = (fp.detach().double(), gz.double())
        errs[name] = [float((a - b).abs().max() / b.abs().max())
                      for a, b in zip(out[torch.float32], out[torch.float64])]
    for e_new, e_ref in zip(errs['new'], errs['ref']):
        assert e_new <= 2 * e_ref + 1e-6, errs


CASES = [dict(solver=s, sample_stride=k) for s in ('direct', 'exact',
                                                   'dual_ascent')
         for k in (1, 4)] + [
    dict(solver='exact', sample_stride=1, normalize='mean'),
    dict(solver='exact', sample_stride=1, classes='all', term='log'),
    dict(solver='exact', sample_stride=2, class_weight=[1, 2, 0.5, 1, 1, 3],
         term='inverse'),
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: '-'.join(
    f'{k}={v}' for k, v in c.items() if k != 'class_weight'))
@pytest.mark.parametrize('metric', ['iou', 'fbeta'])
@pytest.mark.parametrize('weighted', [False, True])
def test_fast_forms_equal_todays_dual_losses(case, metric, weighted):
    C = 6
    g = torch.Generator().manual_seed(7)
    y = torch.randint(0, C, (2, 16, 20), generator=g)
    y[0, :3] = 255
    z = torch.randn(2, C, 16, 20, generator=g, dtype=torch.float64) * 2
    z = (z + 4 * F.one_hot(torch.where(y < C, y, 0), C).permute(0, 3, 1, 2)
         ).requires_grad_()
    w = torch.rand(2, 16, 20, generator=g, dtype=torch.float64) \
        if weighted else None
    if metric == 'iou':
        old = ref.DualIoULoss(num_classes=C, **case)
    else:
        old = ref.DualFbetaLoss(num_classes=C, beta=2.0, **case)
    new = MODELS.build(dict(
        type='DualIoULoss', num_classes=C, **case) if metric == 'iou' else
        dict(type='DualFbetaLoss', num_classes=C, beta=2.0, **case))
    old, new = old.double(), new.double()
    with torch.no_grad():
        for name, p in old.named_parameters():
            p.uniform_(-0.5, 0.8, generator=g)
            dict(new.named_parameters())[name].copy_(p)
    for step in range(2):  # the second step sees the updated duals
        res = []
        for mod in (old, new):
            torch.manual_seed(step)  # the same subsampling phase
            loss = mod(z, y, weight=w)
            names = sorted(n for n, _ in mod.named_parameters())
            params = [dict(mod.named_parameters())[n] for n in names]
            res.append((loss, torch.autograd.grad(loss, [z] + params)))
        (l0, g0), (l1, g1) = res
        torch.testing.assert_close(l1, l0, rtol=0, atol=1e-9)
        for a, b in zip(g1, g0):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    if case['solver'] == 'dual_ascent':
        new.dual_step()  # the registered form defers the step (DualAscentHook)
        torch.testing.assert_close(new.mu, old.mu.to(new.mu))


@pytest.mark.parametrize('thr,scale', [
    (10.0, 1.0),     # sigmoid(-10): almost every pair active (dense case)
    (-2.0, 1.0),     # only confident wrong classes (s > 2)
    (1.0, 0.05),     # t / u = 20: every pair active
    (0.0, 3.0),      # the exact LP's eps = 0: p > 1/2
    ('mixed', None),  # per-class limits from 1e-9 to 0.9
])
def test_active_pair_selection_never_misses_a_pair(thr, scale):
    """The negatives are evaluated on the pairs selected on the softmax
    (p > sigmoid(-t/u), a superset): values and gradients equal the dense
    reference whatever the limit, from no active pair to all of them."""
    z, y, w = _batch(B=2, C=6, H=6, W=7, spread=4.0)
    C = z.shape[1]
    if thr == 'mixed':
        thr_t = torch.tensor([20.0, 5.0, 1.0, 0.0, -1.0, -2.2],
                             dtype=z.dtype)
        scale_t = torch.tensor([1.0, 0.5, 2.0, 1.0, 1.0, 1.0], dtype=z.dtype)
    else:
        thr_t = torch.full((C, ), thr, dtype=z.dtype)
        scale_t = torch.full((C, ), scale, dtype=z.dtype)
    thr_t.requires_grad_()
    scale_t.requires_grad_()
    z.requires_grad_()
    cap = torch.ones(C, dtype=z.dtype)
    g = torch.Generator().manual_seed(5)
    g_fp = torch.randn(C, generator=g, dtype=z.dtype)
    _, fp0, _, _ = _reference_sums(z, y, w, thr_t, scale_t, cap)
    grads0 = torch.autograd.grad((fp0 * g_fp).sum(), [z, thr_t, scale_t])
    sc = log_odds_scores(z, y, w)
    fp1 = negative_hinge_sums(sc, thr_t, scale_t)
    grads1 = torch.autograd.grad((fp1 * g_fp).sum(), [z, thr_t, scale_t])
    torch.testing.assert_close(fp1, fp0, rtol=0, atol=1e-9)
    for a, b in zip(grads1, grads0):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize('scale', [1.0, 30.0, 1000.0])
def test_float32_exp_of_the_softmax_is_accurate(scale):
    """``exp(z - m)`` of the dense pass (exp2 in float32) against float64,
    near each pixel's maximum, whatever the size of the logits."""
    from segreg.ops.hinge_sums import _exp_shifted
    g = torch.Generator().manual_seed(int(scale))
    z = torch.randn(2, 7, 9, 11, generator=g) * scale
    m = z.amax(dim=1, keepdim=True)
    got = _exp_shifted(z, m, torch.empty_like(z))
    d = z.double() - m.double()
    ref = d.exp()
    near = d.abs() < 5
    assert near.sum() > 2 * 9 * 11  # more than the maxima themselves
    rel = ((got.double() - ref).abs() / ref)[near]
    assert float(rel.max()) < 1e-6
    z64 = z.double()
    assert torch.equal(_exp_shifted(z64, m.double(), torch.empty_like(z64)),
                       ref)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_lerp_selects_exactly_at_weights_0_and_1(dtype):
    """The backward selects each own entry's gradient with torch.lerp:
    at weight 1 it must return the end exactly even when the start is huge
    (the cancelling form at a dominant maximum), at weight 0 the start."""
    g = torch.Generator().manual_seed(0)
    n = 1000  # several vector widths and a tail
    a = torch.randn(n, generator=g, dtype=dtype) * 10.0 ** torch.randint(
        -8, 30, (n, ), generator=g).to(dtype)
    b = torch.randn(n, generator=g, dtype=dtype)
    w = (torch.rand(n, generator=g) < 0.5).to(dtype)
    assert torch.equal(torch.lerp(a, b, w), torch.where(w > 0, b, a))
