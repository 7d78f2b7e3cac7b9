#!/usr/bin/env python
"""Forward + backward time and peak memory of the decode heads of the shipped
COCO-Stuff configs, at the token counts those configs train on.

Heads, each built from its config's ``model.decode_head`` (SyncBN as BN, 171
classes, random weights, train mode):

    aspp_plus  DeepLabV3+'s DepthwiseSeparableASPPHead
               (configs/deeplabv3plus/deeplabv3plus_r50-d8_*_coco-stuff164k*)
    nystrom    segreg's NystromHead: the same c1 decoder, ASPP replaced by
               conv -> Nystrom self-attention -> conv
               (configs/nystrom/nystrom_r50-d8_*_coco-stuff164k*)
    aspp       DeepLabV3's ASPPHead (configs/deeplabv3/...), optional

BatchNorm layers run in eval mode (batch 1 works). Inputs are the
ResNet-50-D8 stage outputs a head sees: ``c4`` (2048
channels) at ``H x W`` (the tokens) and ``c1`` (256 channels) at ``2H x 2W``,
batch ``--batch``. A 512 x 512 crop at output stride 8 is 64 x 64 = 4,096
tokens; 16,384 tokens is 128 x 128, a 1024 x 1024 crop at stride 8 (the
same token count as a 512 x 512 crop at stride 4). One step is
``head(inputs)`` to the logits, their sum, backward into the head's
weights. Arms are timed interleaved (``common.interleaved``: every
repetition runs every head once, in shuffled order) and reported as medians
and as ratios to ``aspp_plus``; peak memory is one extra call
(``common.peak_bytes``).

Examples:
    python benchmarks/head_cost.py                       # CPU, 4096 16384
    python benchmarks/head_cost.py --tokens 4096 --reps 5 --quick
    python benchmarks/head_cost.py --device cuda --batch 4 --reps 20
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import os.path as osp
import sys
from typing import Dict, List

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCH = osp.dirname(osp.abspath(__file__))
for p in (REPO, BENCH):
    if p not in sys.path:
        sys.path.insert(0, p)

from common import (_sync_bn_to_bn, interleaved, machine,  # noqa: E402
                    peak_bytes, setup_device, summary)

CONFIGS = dict(
    aspp_plus='configs/deeplabv3plus/'
    'deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py',
    nystrom='configs/nystrom/nystrom_r50-d8_4xb4-80k_coco-stuff164k-512x512.py',
    aspp='configs/deeplabv3/deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py')
STAGE_CHANNELS = (256, 512, 1024, 2048)  # ResNet-50 c1..c4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tokens', type=int, nargs='+', default=[4096, 16384],
                   help='H x W of c4, each a square (default 4096 16384)')
    p.add_argument('--heads', nargs='+', default=['aspp_plus', 'nystrom'],
                   choices=sorted(CONFIGS), help='heads to time (the first '
                   'is the denominator of the ratios)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--threads', type=int, default=2,
                   help='torch CPU threads (default 2)')
    p.add_argument('--system-malloc', action='store_true',
                   help="leave glibc's allocator as it is (CPU)")
    p.add_argument('--no-memory', action='store_true',
                   help='skip the peak-memory call')
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results'),
                   help='folder for head_cost.json and head_cost.md')
    p.add_argument('--quick', action='store_true',
                   help='a smoke run: 1 repetition, no warm-up')
    args = p.parse_args(argv)
    for n in args.tokens:
        if math.isqrt(n) ** 2 != n:
            p.error(f'--tokens {n}: not a square (H = W = sqrt(tokens))')
    if args.quick:
        args.reps, args.warmup = 1, 0
    return args


def build_head(name: str, device) -> torch.nn.Module:
    """The decode head of ``CONFIGS[name]``, SyncBN as BN, in train mode
    but for its BatchNorm layers."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import segreg  # noqa: F401  (registers NystromHead)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[name]))
    head = _sync_bn_to_bn(copy.deepcopy(cfg.model.decode_head.to_dict()))
    torch.manual_seed(0)
    model = MODELS.build(head).to(device).train()
    # BatchNorm in eval mode: DeepLab's image-pool branch has one value per
    # channel, which train-mode BN rejects at batch 1 (the arithmetic is the
    # same up to the batch statistics)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def head_inputs(batch: int, tokens: int, device) -> List[torch.Tensor]:
    """ResNet-50 stage outputs with c4 at sqrt(tokens)^2 (stride 8) and c1
    at twice its side (stride 4); c2, c3 at c4's size (dilated stages)."""
    s = math.isqrt(tokens)
    g = torch.Generator().manual_seed(0)
    sides = (2 * s, s, s, s)
    return [torch.randn(batch, c, h, h, generator=g).relu().to(device)
            for c, h in zip(STAGE_CHANNELS, sides)]


def step_fn(head: torch.nn.Module, inputs: List[torch.Tensor]):
    def step() -> None:
        head.zero_grad(set_to_none=True)
        head(inputs).float().sum().backward()
    return step


def table(res: dict) -> str:
    m = res['machine']
    base = res['heads'][0]
    lines = [
        f"# Decode-head cost ({m['date']}, {m['device_name']}, "
        f"{res['threads']} thread(s), torch {m['torch']})",
        '',
        f"Forward + backward of one decode head, batch {res['batch']}, "
        "171 classes, the shipped COCO-Stuff configs' heads; median of "
        f"{res['reps']} interleaved repetitions; ratios to `{base}`. "
        '`python benchmarks/head_cost.py` wrote this table.',
        '',
        '| tokens (c4 map) | head | parameters | fwd + bwd ms | x ' + base +
        ' | peak MB | x ' + base + ' memory |',
        '|---|---|---|---|---|---|---|']
    for n, rows in res['tokens'].items():
        s = math.isqrt(int(n))
        for h in res['heads']:
            r = rows[h]
            mem = '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
            xm = '-' if r['x_mem'] is None else f"{r['x_mem']:.2f}"
            lines.append(f"| {int(n):,} ({s} x {s}) | `{h}` | "
                         f"{res['params'][h] / 1e6:.1f} M | "
                         f"{r['median_ms']:.0f} | {r['x_time']:.2f} | "
                         f"{mem} | {xm} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    setup = setup_device(args.device, args.threads, args.system_malloc)
    heads = {h: build_head(h, device) for h in args.heads}
    res = dict(machine=machine(device), batch=args.batch, reps=args.reps,
               heads=args.heads, configs={h: CONFIGS[h] for h in args.heads},
               params={h: sum(p.numel() for p in m.parameters())
                       for h, m in heads.items()},
               tokens={}, **setup)
    base = args.heads[0]
    for n in args.tokens:
        inputs = head_inputs(args.batch, n, device)
        steps: Dict[str, object] = {h: step_fn(m, inputs)
                                    for h, m in heads.items()}
        times, _ = interleaved(steps, args.reps, args.warmup, device)
        rows = {h: dict(summary(t), times_ms=[1e3 * x for x in t])
                for h, t in times.items()}
        for h in args.heads:
            rows[h]['peak_mb'] = None if args.no_memory else \
                peak_bytes(steps[h], device) / 2**20
        for h in args.heads:
            r = rows[h]
            r['x_time'] = r['median_ms'] / rows[base]['median_ms']
            r['x_mem'] = None if r['peak_mb'] is None else \
                r['peak_mb'] / rows[base]['peak_mb']
            print(f"{n:>6} tokens  {h:<10} {r['median_ms']:9.0f} ms "
                  f"x{r['x_time']:.2f}  peak "
                  f"{'-' if r['peak_mb'] is None else round(r['peak_mb'])}"
                  f" MB", flush=True)
        res['tokens'][str(n)] = rows
        del inputs
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'head_cost.json'), 'w') as f:
        json.dump(res, f, indent=2)
    with open(osp.join(args.out, 'head_cost.md'), 'w') as f:
        f.write(table(res))
    print(f"wrote {osp.join(args.out, 'head_cost.md')} and .json")
    return res


if __name__ == '__main__':
    main()
