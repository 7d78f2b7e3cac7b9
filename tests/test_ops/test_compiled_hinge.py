"""segreg.ops.compiled_hinge (``kernel='compiled'``) against the sparse kernel.

The oracle is the sparse kernel of segreg.ops.hinge_sums, itself tested
against the pre-issue-17 implementation; test_hinge_sums.py runs both
kernels against that frozen reference (every sum and gradient, both
layouts, weighted or not). float64, values and gradients within 1e-9, on
batches with clamped scores, exact ties and ignored pixels.
"""
from __future__ import annotations

import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.ops import compiled_hinge
from segreg.ops.hinge_sums import (hinge_counts, log_odds_scores,
                                   negative_hinge_sums)

HERE = osp.dirname(osp.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    'segreg_test_hinge_sums', osp.join(HERE, 'test_hinge_sums.py'))
th = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(th)
needs_compiler = th.needs_compiler


@needs_compiler
@pytest.mark.parametrize('thr,scale', [(10.0, 1.0), (-2.0, 1.0),
                                       (1.0, 0.05), (0.0, 3.0)])
def test_every_activity_pattern_and_two_negative_calls(thr, scale):
    """From almost every negative pair active to only confident ones; two
    negative sums of one scores object (their gradients add in the one
    dense backward pass)."""
    z, y, w = th._batch(B=2, C=6, H=6, W=7, spread=4.0)
    z.requires_grad_()
    C = z.shape[1]
    t1 = torch.full((C, ), thr, dtype=z.dtype, requires_grad=True)
    u1 = torch.full((C, ), scale, dtype=z.dtype, requires_grad=True)
    t2 = torch.linspace(-1.0, 2.0, C, dtype=z.dtype, requires_grad=True)
    res = {}
    for kernel in ('sparse', 'compiled'):
        sc = log_odds_scores(z, y, w, kernel=kernel)
        fp1 = negative_hinge_sums(sc, t1, u1)
        fp2 = negative_hinge_sums(sc, t2, 1.0)
        loss = (fp1 * torch.arange(C)).sum() - 0.7 * fp2.sum()
        res[kernel] = (fp1, fp2) + torch.autograd.grad(loss, [z, t1, u1, t2])
    for a, b in zip(res['compiled'], res['sparse']):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


@needs_compiler
def test_float32_and_trailing_shapes():
    g = torch.Generator().manual_seed(4)
    for shape in [(2, 5, 9, 11), (3, 4, 10)]:
        z = torch.randn(*shape, generator=g) * 3
        y = torch.randint(0, shape[1], (shape[0], ) + shape[2:], generator=g)
        y.view(-1)[::5] = 255
        out = {}
        for kernel in ('sparse', 'compiled'):
            x = z.clone().requires_grad_()
            tp, fp, n = hinge_counts(x, y, kernel=kernel)
            gz, = torch.autograd.grad((tp - 0.2 * fp).sum(), x)
            out[kernel] = (tp, fp, n, gz)
        for a, b in zip(out['compiled'], out['sparse']):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


FORM_CASES = [dict(solver=s, sample_stride=k)
              for s in ('direct', 'exact', 'dual_ascent', 'dataset')
              for k in (1, 2)]


@needs_compiler
@pytest.mark.parametrize('case', FORM_CASES,
                         ids=lambda c: f"{c['solver']}-s{c['sample_stride']}")
def test_every_form_gives_the_same_loss_with_either_kernel(case):
    C = 6
    g = torch.Generator().manual_seed(7)
    y = torch.randint(0, C, (2, 16, 20), generator=g)
    y[0, :3] = 255
    z = torch.randn(2, C, 16, 20, generator=g, dtype=torch.float64) * 2
    z = (z + 4 * F.one_hot(torch.where(y < C, y, 0), C).permute(0, 3, 1, 2)
         ).requires_grad_()
    w = torch.rand(2, 16, 20, generator=g, dtype=torch.float64)
    mods = [MODELS.build(dict(type='DualIoULoss', num_classes=C,
                              kernel=k, **case)).double()
            for k in ('sparse', 'compiled')]
    with torch.no_grad():
        for p0, p1 in zip(mods[0].parameters(), mods[1].parameters()):
            p0.uniform_(-0.5, 0.8, generator=g)
            p1.copy_(p0)
    for step in range(2):  # the dual forms' second step sees updated duals
        res = []
        for mod in mods:
            torch.manual_seed(step)  # the same subsampling phase
            loss = mod(z, y, weight=w)
            res.append((loss, ) + torch.autograd.grad(
                loss, [z] + list(mod.parameters())))
        for a, b in zip(res[1], res[0]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    for b0, b1 in zip(mods[0].buffers(), mods[1].buffers()):
        torch.testing.assert_close(b1, b0)


def test_the_option_is_checked_where_it_means_nothing():
    with pytest.raises(ValueError, match="kernel must be one of"):
        MODELS.build(dict(type='DualIoULoss', num_classes=3, kernel='fused'))
    with pytest.raises(ValueError, match="surrogate='hinge' only"):
        MODELS.build(dict(type='DualIoULoss', num_classes=3,
                          surrogate='square', kernel='compiled'))
    with pytest.raises(ValueError, match='kernel must be one of'):
        MODELS.build(dict(type='PrecisionAtRecallLoss', num_classes=3,
                          target_classes=[1], kernel='compiled'))
    with pytest.raises(ValueError, match='kernel must be one of'):
        log_odds_scores(torch.zeros(1, 2, 2), torch.zeros(1, 2).long(),
                        kernel='fused')


def test_a_compiler_failure_is_one_line_that_says_what_to_do(monkeypatch):
    def broken(name):
        def fn(*args):
            raise RuntimeError('CppCompileError: g++ not found\n<pages>')
        return fn

    monkeypatch.setattr(compiled_hinge, '_compiled', broken)
    z = torch.randn(1, 3, 2, 2, requires_grad=True)
    with pytest.raises(RuntimeError) as err:
        hinge_counts(z, torch.zeros(1, 2, 2).long(), kernel='compiled')
    msg = str(err.value)
    assert "kernel='sparse'" in msg and 'g++ not found' in msg
    assert '<pages>' not in msg and '\n' not in msg
