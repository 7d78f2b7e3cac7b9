#!/usr/bin/env python
"""Train-step overhead of a regularizer: a model's forward, losses, backward
and SGD step with cross-entropy alone vs CE + one extra loss, interleaved.

Arms (``--arms``) are the loss names of benchmarks/loss_cost.py that the
registry builds: ``direct_s4`` (the default regularizer, ``DualIoULoss()``),
``direct_s1`` (the same at every pixel), ``exact_s1``, ``dual_ascent_s1``,
``dataset_s1``, ``jml``, ``lovasz``, ``dice``. The baseline ``ce`` is the
config's model with the decode head's losses replaced by cross-entropy;
every other arm adds its loss to that list. Every arm has its own copy of
the model (same seed) and optimizer; each repetition runs every arm once in
a freshly shuffled order. Reported: the median step time, its overhead over
CE's median, and the paired overhead (median and quartiles over the
repetitions of each step over CE's step of the same repetition, which
cancels a drift of the machine between repetitions). On a GPU also the
peak memory of one step.

Labels are Voronoi label maps (benchmarks/common.py), images Gaussian noise.

Examples:
    # the demo model on the CPU, 1 thread (CE, CE + default, CE + every pixel)
    python benchmarks/train_step_cost.py

    # a smoke run
    python benchmarks/train_step_cost.py --quick

    # DeepLabV3 R50-D8 at 512 x 512, batch 8, bf16 autocast, on a GPU
    python benchmarks/train_step_cost.py --device cuda --autocast \\
        --config configs/deeplabv3/deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py \\
        --input 8 512 512 --arms direct_s4 direct_s1 lovasz
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional, Sequence

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO, osp.join(REPO, 'benchmarks')):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import common  # noqa: E402
from loss_cost import LOSS_CFGS  # noqa: E402

DEMO = osp.join(REPO, 'configs', 'demo',
                'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
DEFAULT_ARMS = ['direct_s4', 'direct_s1']


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=DEMO)
    p.add_argument('--input', nargs=3, type=int, default=None,
                   metavar=('B', 'H', 'W'),
                   help='batch and crop (default: 8 and the config crop)')
    p.add_argument('--arms', nargs='+', default=DEFAULT_ARMS,
                   help=f'extra losses, of {list(LOSS_CFGS)}')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads on the CPU (default 1)')
    p.add_argument('--autocast', action='store_true',
                   help='bf16 autocast around forward and losses')
    p.add_argument('--system-malloc', action='store_true',
                   help="CPU: leave glibc's allocator as it is (default: "
                   'pinned to its heap, common.pin_cpu_allocator)')
    p.add_argument('--reps', type=int, default=None,
                   help='timed repetitions (default 30 on the CPU, 20 on a '
                   'GPU; --quick: 2)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--quick', action='store_true',
                   help='2 repetitions after 1 warm-up (a smoke run)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None,
                   help='JSON file (default benchmarks/results/'
                   'train_step_<device>.json)')
    args = p.parse_args(argv)
    for a in args.arms:
        if a not in LOSS_CFGS:
            p.error(f'unknown arm {a!r}; known: {list(LOSS_CFGS)}')
    if args.quick:
        args.reps = args.reps or 2
        args.warmup = min(args.warmup, 1)
    if args.reps is None:
        args.reps = 20 if args.device.startswith('cuda') else 30
    return args


def time_train_step(config: str, arms: Sequence[str], inputs, reps: int,
                    warmup: int, device, autocast: bool = False,
                    seed: int = 0) -> Dict[str, dict]:
    """Median step time of CE alone and of CE + each arm's loss."""
    device = torch.device(device)
    B, H, W = inputs
    models = {}
    for arm in ['ce'] + [a for a in arms if a != 'ce']:
        extra = None if arm == 'ce' else LOSS_CFGS[arm]
        models[arm] = common.build_model(config, device, extra_loss=extra,
                                         ce_only=True, seed=seed)
    num_classes = models['ce'][2]
    img, samples = common.model_inputs(B, H, W, num_classes, device,
                                       seed=seed + 1)

    def step(arm):
        model, opt, _ = models[arm]
        common.train_step(model, opt, img, samples, autocast)

    steps = {a: (lambda a=a: step(a)) for a in models}
    times, _ = common.interleaved(steps, reps, warmup, device, seed=seed)
    res = {a: common.summary(t) for a, t in times.items()}
    base = res['ce']['median_ms']
    for a, r in res.items():
        r['added_vs_ce'] = r['median_ms'] / base - 1.0
        paired = sorted(t / c - 1.0 for t, c in zip(times[a], times['ce']))
        q = statistics.quantiles(paired, n=4) if len(paired) >= 4 else \
            [paired[0], 0, paired[-1]]
        r['added_paired'] = statistics.median(paired)
        r['added_paired_q1'], r['added_paired_q3'] = q[0], q[2]
        r['peak_mb'] = (common.peak_bytes(steps[a], device) / 2**20
                        if device.type == 'cuda' else None)
    return res


def print_table(res: Dict[str, dict], config: str, inputs) -> None:
    print(f'\ntrain step of {osp.basename(config)} on input '
          f'{inputs[0]}x3x{inputs[1]}x{inputs[2]} (forward, CE + loss, '
          'backward, SGD step; median; paired: median [quartiles] of each '
          "repetition's step over CE's)")
    for k, r in res.items():
        name = 'ce' if k == 'ce' else 'ce+' + k
        pr = '' if k == 'ce' else (
            f"  paired {100 * r['added_paired']:+.1f}% "
            f"[{100 * r['added_paired_q1']:+.1f}, "
            f"{100 * r['added_paired_q3']:+.1f}]")
        pk = '' if r['peak_mb'] is None else f"  peak {r['peak_mb']:.0f} MB"
        print(f"{name:<18}{r['median_ms']:>10.1f} ms  "
              f"{100 * r['added_vs_ce']:+.1f}%{pr}{pk}")


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config
    setup = common.setup_device(args.device, args.threads,
                                args.system_malloc)
    machine = common.machine(args.device)
    cfg = Config.fromfile(args.config)
    crop = cfg.get('crop_size', (512, 512))
    inputs = tuple(args.input or (8, crop[0], crop[1]))
    res = time_train_step(args.config, args.arms, inputs, args.reps,
                          args.warmup, args.device, args.autocast,
                          args.seed)
    print_table(res, args.config, inputs)
    out = dict(config=osp.relpath(args.config, REPO), input=list(inputs),
               autocast=args.autocast, reps=args.reps, warmup=args.warmup,
               machine=machine, **setup, arms=res)
    path = args.out or osp.join(
        REPO, 'benchmarks', 'results',
        f'train_step_{torch.device(args.device).type}.json')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'\nwrote {path}')
    return out


if __name__ == '__main__':
    main()
