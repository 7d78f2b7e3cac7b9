#!/usr/bin/env python
"""Time and peak memory of global attention over n tokens, by method.

Methods (forward pass, no autograd, ``batch x heads x n x head_dims``):

    matmul        softmax(q k^T / sqrt(d)) v with explicit n x n scores
    sdpa          torch.nn.functional.scaled_dot_product_attention
    nystrom       segreg.ops.nystrom_attention (m landmarks, 6 pinv iters)
    nystrom-mod   segreg.models.NystromAttention: the op plus the q/k/v and
                  output projections (no conv skip), input (batch, n, C)
    nystrom-pkg   the `nystrom-attention` package (lucidrains, 0.0.14), the
                  same projections, no residual conv: the outside reference
                  for nystrom-mod (pip install 'segreg[bench]'; the row is
                  skipped with a note if it is absent)

Peak memory is the high-water mark of memory allocated by the call beyond
its inputs: torch.cuda.max_memory_allocated on GPU; on CPU, the running sum
of the allocations and frees that the torch profiler records during one
extra call. ``rel_err`` is ||out - sdpa|| / ||sdpa|| on the random inputs.

Examples:
    python benchmarks/attention_cost.py                 # CPU, 1k..8k tokens
    python benchmarks/attention_cost.py --device cuda --large   # 1k..64k
    python benchmarks/attention_cost.py --tokens 4096 16384 --landmarks 128
"""
from __future__ import annotations

import argparse
import json
import math
import os
import os.path as osp
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_TOKENS = [1024, 2048, 4096, 8192]
LARGE_TOKENS = [1024, 2048, 4096, 8192, 16384, 32768, 65536]
METHODS = ['matmul', 'sdpa', 'nystrom', 'nystrom-mod', 'nystrom-pkg']
DTYPES = dict(float32=torch.float32, bfloat16=torch.bfloat16,
              float16=torch.float16)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tokens', type=int, nargs='+', default=None,
                   help=f'token counts (default {DEFAULT_TOKENS})')
    p.add_argument('--large', action='store_true',
                   help=f'token counts {LARGE_TOKENS} (meant for a GPU)')
    p.add_argument('--methods', nargs='+', default=METHODS, choices=METHODS)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--heads', type=int, default=8)
    p.add_argument('--head-dims', type=int, default=64)
    p.add_argument('--landmarks', type=int, default=256)
    p.add_argument('--pinv-iters', type=int, default=6)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--dtype', default='float32', choices=sorted(DTYPES))
    p.add_argument('--repeats', type=int, default=5,
                   help='timed calls per cell (fewer when a call is slow, '
                   'see --budget)')
    p.add_argument('--budget', type=float, default=3.0,
                   help='stop repeating a cell after this many seconds')
    p.add_argument('--max-exact-tokens', type=int, default=None,
                   help='skip the matmul row above this n (default: 4096 on '
                   'CPU, none on GPU, where out-of-memory is reported)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch default)')
    p.add_argument('--no-memory', action='store_true',
                   help='skip the memory measurement (faster on CPU)')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results',
                                             'attention_cost.json'),
                   help='JSON output path')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--quick', action='store_true',
                   help='a smoke run: 1 timed call per cell, 1k and 2k '
                   'tokens unless --tokens is given')
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.tokens = args.tokens or DEFAULT_TOKENS[:2]
    return args


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], torch.Tensor], device: torch.device,
              repeats: int, budget: float) -> List[float]:
    """Milliseconds of each timed call, after one warm-up call."""
    fn()
    _sync(device)
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (
            not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def peak_memory_mb(fn: Callable[[], torch.Tensor],
                   device: torch.device) -> float:
    """Peak memory allocated by one call beyond what was live before it."""
    if device.type == 'cuda':
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return peak / 2**20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        out = fn()
    del out
    events = sorted((e.time_range.start, e.self_cpu_memory_usage)
                    for e in p.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak / 2**20


def build_methods(args, device, dtype):
    """name -> factory(n) returning (callable, output-for-error or None),
    or a string saying why the method is unavailable."""
    from segreg.models import NystromAttention as SegregNystrom
    from segreg.ops import nystrom_attention
    b, h, d, m = args.batch, args.heads, args.head_dims, args.landmarks
    c = h * d
    gen = torch.Generator(device='cpu').manual_seed(args.seed)

    def qkv(n):
        return [torch.randn(b, h, n, d, generator=gen).to(device, dtype)
                for _ in range(3)]

    def matmul_attn(q, k, v):
        scores = (q @ k.transpose(-1, -2)) * d**-0.5
        return torch.softmax(scores, dim=-1) @ v

    factories: Dict[str, object] = {}
    factories['matmul'] = lambda q, k, v, x: (lambda: matmul_attn(q, k, v))
    factories['sdpa'] = lambda q, k, v, x: (
        lambda: F.scaled_dot_product_attention(q, k, v))
    factories['nystrom'] = lambda q, k, v, x: (
        lambda: nystrom_attention(q, k, v, m, args.pinv_iters))

    torch.manual_seed(args.seed)
    ours = SegregNystrom(c, num_heads=h, num_landmarks=m,
                         pinv_iters=args.pinv_iters, conv_kernel_size=0,
                         qkv_bias=False).to(device, dtype).eval()
    factories['nystrom-mod'] = lambda q, k, v, x: (lambda: ours(x))
    try:
        from nystrom_attention import NystromAttention as PkgNystrom
        theirs = PkgNystrom(dim=c, dim_head=d, heads=h, num_landmarks=m,
                            pinv_iterations=args.pinv_iters,
                            residual=False).to(device, dtype).eval()
        factories['nystrom-pkg'] = lambda q, k, v, x: (lambda: theirs(x))
    except ImportError:
        factories['nystrom-pkg'] = ("skipped: package `nystrom-attention` "
                                    "not installed (pip install "
                                    "'segreg[bench]')")
    return factories, qkv


def fmt_row(r: dict) -> str:
    if r['status'] != 'ok':
        return (f"{r['method']:<12} {r['tokens']:>7}  "
                f"{'-':>10} {'-':>10} {'-':>10} {'-':>10}  {r['status']}")
    mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.1f}"
    err = '' if r.get('rel_err') is None else f"{r['rel_err']:.2e}"
    return (f"{r['method']:<12} {r['tokens']:>7}  {r['time_ms']:>10.2f} "
            f"{r['time_ms_min']:>10.2f} {mem:>10} {err:>10}")


def growth_exponent(rows: List[dict], method: str) -> Optional[float]:
    """Least-squares slope of log(time) against log(n)."""
    pts = [(math.log(r['tokens']), math.log(r['time_ms'])) for r in rows
           if r['method'] == method and r['status'] == 'ok']
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx)**2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    tokens = args.tokens or (LARGE_TOKENS if args.large else DEFAULT_TOKENS)
    max_exact = args.max_exact_tokens or (
        4096 if device.type == 'cpu' else None)
    factories, qkv = build_methods(args, device, dtype)
    env = dict(
        device=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                else f'cpu ({platform.processor() or platform.machine()})'),
        torch=torch.__version__, threads=torch.get_num_threads(),
        dtype=args.dtype, batch=args.batch, heads=args.heads,
        head_dims=args.head_dims, landmarks=args.landmarks,
        pinv_iters=args.pinv_iters, omp_num_threads=os.environ.get(
            'OMP_NUM_THREADS'))
    print('attention cost: ' + ', '.join(f'{k}={v}' for k, v in env.items()))
    print(f"{'method':<12} {'tokens':>7}  {'median_ms':>10} {'min_ms':>10} "
          f"{'peak_MB':>10} {'rel_err':>10}")
    rows: List[dict] = []
    with torch.inference_mode():
        for n in tokens:
            q, k, v = qkv(n)
            x = q.transpose(1, 2).reshape(args.batch, n, -1).contiguous()
            outs: Dict[str, torch.Tensor] = {}
            for method in args.methods:
                row = dict(method=method, tokens=n, status='ok',
                           time_ms=None, time_ms_min=None, peak_mem_mb=None,
                           rel_err=None, repeats=0)
                factory = factories[method]
                if isinstance(factory, str):
                    row['status'] = factory
                elif method == 'matmul' and max_exact and n > max_exact:
                    gb = args.batch * args.heads * n * n * 4 * 2 / 2**30
                    row['status'] = (f'skipped: n > --max-exact-tokens '
                                     f'{max_exact} (~{gb:.1f} GB of scores)')
                else:
                    fn = factory(q, k, v, x)
                    try:
                        times = time_call(fn, device, args.repeats,
                                          args.budget)
                        row.update(time_ms=statistics.median(times),
                                   time_ms_min=min(times),
                                   repeats=len(times))
                        if not args.no_memory:
                            row['peak_mem_mb'] = peak_memory_mb(fn, device)
                        if method in ('matmul', 'sdpa', 'nystrom'):
                            outs[method] = fn().float()
                    except torch.OutOfMemoryError:
                        row['status'] = 'out of memory'
                    except RuntimeError as exc:  # e.g. CPU allocation failure
                        row['status'] = f'failed: {str(exc)[:80]}'
                    del fn
                    if device.type == 'cuda':
                        torch.cuda.empty_cache()
                rows.append(row)
            # errors against SDPA (computed here if its row was not run)
            ref = outs.get('sdpa')
            if ref is None and outs:
                ref = F.scaled_dot_product_attention(q, k, v).float()
            for row in rows[-len(args.methods):]:
                if row['method'] in outs and row['method'] != 'sdpa':
                    out = outs[row['method']]
                    row['rel_err'] = ((out - ref).norm() / ref.norm()).item()
                print(fmt_row(row), flush=True)
            del q, k, v, x, ref, outs
    summary = {m: growth_exponent(rows, m) for m in args.methods}
    speedup = {}
    for n in tokens:
        by = {r['method']: r for r in rows
              if r['tokens'] == n and r['status'] == 'ok'}
        if 'sdpa' in by and 'nystrom' in by:
            speedup[n] = by['sdpa']['time_ms'] / by['nystrom']['time_ms']
    print('time ~ n^p, fitted p: ' + (', '.join(
        f'{m} {p:.2f}' for m, p in summary.items() if p is not None)
        or 'n/a (needs two token counts)'))
    if speedup:
        print('nystrom speed-up over sdpa: ' + ', '.join(
            f'{n}: {s:.1f}x' for n, s in speedup.items()))
    result = dict(env=env, rows=rows, growth_exponent=summary,
                  speedup_over_sdpa={str(k): v for k, v in speedup.items()})
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'wrote {args.out}')
    return result


if __name__ == '__main__':
    main()
