"""segreg.ops.nystrom: exactness, convergence in m, the iterative pinv,
uneven segments, gradients and bfloat16 autocast."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segreg.ops import iterative_pinv, nystrom_attention, segment_means


def exact_attention(q, k, v, scale=None):
    scale = q.shape[-1]**-0.5 if scale is None else scale
    return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v


def smooth_tokens(n: int, d: int, seed: int = 0, dtype=torch.float32):
    """q, k, v whose rows vary smoothly along the sequence (like features
    along an image row): the landmark means summarise them well, so the
    attention matrix is close to low rank in the Nystrom sense."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]

    def field(amp):
        freq = 3 * torch.randn(1, d, generator=g, dtype=torch.float64)
        phase = 6 * torch.rand(1, d, generator=g, dtype=torch.float64)
        return amp * torch.sin(2 * math.pi * t * freq + phase)

    base = field(2.0)
    noise = lambda: 0.05 * torch.randn(n, d, generator=g,  # noqa: E731
                                       dtype=torch.float64)
    q, k = base + noise(), base + noise()
    v = field(1.0) + noise()
    return [x.to(dtype) for x in (q, k, v)]


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('n', [1, 7, 64, 97])
@pytest.mark.parametrize('extra', [0, 5])
def test_exact_when_landmarks_cover_tokens(n, extra):
    torch.manual_seed(n)
    q, k, v = torch.randn(3, 2, 3, n, 16).unbind(0)
    out = nystrom_attention(q, k, v, num_landmarks=n + extra)
    torch.testing.assert_close(
        out, exact_attention(q, k, v), rtol=1e-5, atol=1e-5)


def test_custom_scale_and_value_width():
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 50, 8).unbind(0)
    v = torch.randn(4, 50, 5)
    out = nystrom_attention(q, k, v, 50, scale=0.3)
    torch.testing.assert_close(out, exact_attention(q, k, v, 0.3),
                               rtol=1e-5, atol=1e-5)
    assert nystrom_attention(q, k, v, 7, scale=0.3).shape == (4, 50, 5)


def test_error_shrinks_as_landmarks_grow():
    q, k, v = smooth_tokens(512, 16)
    ref = exact_attention(q, k, v)
    errs = [rel_err(nystrom_attention(q, k, v, m), ref)
            for m in (4, 8, 16, 32, 64, 128)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 0.3 and errs[-1] < 1e-3, errs


def test_uneven_segments_follow_floor_boundaries():
    n, m = 10, 4  # boundaries floor(i*10/4) = 0, 2, 5, 7, 10
    x = torch.arange(n, dtype=torch.float64)[:, None].expand(n, 3)
    means = segment_means(x[None], m)[0, :, 0]
    torch.testing.assert_close(
        means, torch.tensor([0.5, 3.0, 5.5, 8.0], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), m=st.integers(1, 300))
def test_segments_partition_tokens(n, m):
    m = min(m, n)
    x = torch.randn(2, n, 3, dtype=torch.float64)
    means = segment_means(x, m)
    bounds = [i * n // m for i in range(m + 1)]
    assert all(b > a for a, b in zip(bounds, bounds[1:]))  # none empty
    ref = torch.stack([x[:, a:b].mean(1) for a, b in zip(bounds, bounds[1:])],
                      dim=1)
    torch.testing.assert_close(means, ref)


def test_odd_token_counts_run_and_approximate():
    for n, m in [(97, 32), (1001, 64), (255, 64)]:
        q, k, v = smooth_tokens(n, 16, seed=n)
        out = nystrom_attention(q[None], k[None], v[None], m)
        assert out.shape == (1, n, 16) and torch.isfinite(out).all()
        assert rel_err(out[0], exact_attention(q, k, v)) < 0.02, (n, m)


def spd_like(m: int, cond: float, rank: int | None = None, seed: int = 0):
    """A random m x m matrix with singular values in [1/cond, 1] (the last
    m - rank of them zero)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    w, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(cond), m, dtype=torch.float64)
    if rank is not None:
        s[rank:] = 0
    return u @ torch.diag(s) @ w.T


@pytest.mark.parametrize('rank', [None, 20])
def test_iterative_pinv_approaches_pinv(rank):
    a = spd_like(32, cond=5.0, rank=rank)
    ref = torch.linalg.pinv(a)
    errs = [rel_err(iterative_pinv(a, it), ref) for it in (1, 2, 4, 6, 10)]
    assert all(x >= y for x, y in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-10, errs


def test_iterative_pinv_on_softmax_kernels_is_batched():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 16, 16, dtype=torch.float64)
    a = torch.softmax(logits + 3 * torch.eye(16, dtype=torch.float64), -1)
    a[0, 0] *= 10  # per-matrix scaling: one large matrix must not slow others
    torch.testing.assert_close(iterative_pinv(a, 12), torch.linalg.pinv(a),
                               rtol=1e-8, atol=1e-8)


def test_gradcheck_nystrom_and_exact_paths():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 11, 4, dtype=torch.float64,
                           requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(
        lambda q, k, v: nystrom_attention(q, k, v, 3, pinv_iters=3),
        (q, k, v))
    assert torch.autograd.gradcheck(
        lambda q, k, v: nystrom_attention(q, k, v, 11), (q, k, v))


def test_bf16_autocast_cpu_is_finite_and_close():
    q, k, v = (x[None, None].repeat(2, 4, 1, 1)
               for x in smooth_tokens(777, 32, seed=3))
    ref = nystrom_attention(q, k, v, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = nystrom_attention(q, k, v, 64)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert rel_err(out.float(), ref) < 0.05
    assert rel_err(out.float(), exact_attention(q, k, v)) < 0.08


def test_bad_arguments():
    q = torch.randn(5, 4)
    with pytest.raises(ValueError):
        nystrom_attention(q, q, q, 0)
    with pytest.raises(ValueError):
        nystrom_attention(q, q[:4], q, 2)
    with pytest.raises(ValueError):
        segment_means(q, 6)


def test_benchmark_smoke_without_reference_package(tmp_path, monkeypatch):
    """benchmarks/attention_cost.py runs on tiny sizes, writes its JSON and
    skips the outside-reference row when the package is absent."""
    import importlib.util
    import json
    import os.path as osp
    import sys
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'attention_cost', osp.join(repo, 'benchmarks', 'attention_cost.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setitem(sys.modules, 'nystrom_attention', None)
    out = tmp_path / 'cost.json'
    result = bench.main([
        '--tokens', '40', '64', '--heads', '2', '--head-dims', '8',
        '--landmarks', '16', '--repeats', '1', '--no-memory', '--device',
        'cpu', '--out', str(out)
    ])
    saved = json.loads(out.read_text())
    assert saved['rows'] == result['rows'] and len(saved['rows']) == 10
    by = {(r['method'], r['tokens']): r for r in saved['rows']}
    assert by[('nystrom-pkg', 64)]['status'].startswith('skipped')
    assert by[('nystrom', 64)]['status'] == 'ok'
    assert by[('matmul', 40)]['rel_err'] < 1e-5
