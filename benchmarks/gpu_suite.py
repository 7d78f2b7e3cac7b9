#!/usr/bin/env python
"""The GPU suite in one process: loss table, train steps, attention.

Run through benchmarks/gpu_suite.sh (which installs what is missing from a
local wheel folder); ``--dry-run`` uses tiny shapes on the CPU so that the
test suite can run it end to end in seconds (tests/test_benchmarks.py).

Writes into OUT: ``loss_fp32.json``, ``loss_bf16.json`` (8 x 171 x 512 x
512: every loss of benchmarks/loss_cost.py, fp32 and bf16 autocast, time and
peak memory), ``train_step.json`` (DeepLabV3+ R50-D8, batch 8, 512 x 512,
bf16: CE vs CE + default vs CE + every-pixel form vs CE + Lovasz),
``attention.json`` (Nystrom vs SDPA at 4k / 16k / 64k tokens), and
``summary.md`` (the tables) + ``suite.json`` (wall times).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO, osp.join(REPO, 'benchmarks')):
    if _p not in sys.path:
        sys.path.insert(0, _p)

R50 = osp.join(REPO, 'configs', 'deeplabv3plus',
               'deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py')
DEMO = osp.join(REPO, 'configs', 'demo',
                'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
ARMS = ['direct_s4_fast', 'direct_s1_fast', 'lovasz_mmseg', 'direct_s4_old',
        'direct_s1_old']


def plan(dry: bool) -> dict:
    """Arguments of every step (full GPU run or CPU dry run)."""
    if dry:
        return dict(
            device='cpu',
            loss=['--shape', '2', '5', '16', '16', '--reps', '1',
                  '--warmup', '0', '--losses', 'ce_mmseg', 'dice_masked',
                  'jml', 'lovasz_mmseg', 'lovasz_batched', 'direct_s4_fast',
                  'direct_s1_old', 'exact_s1_fast', 'dual_ascent_s4_fast',
                  'direct_s1_compiled'],
            step=['--config', DEMO, '--input', '2', '32', '32', '--reps',
                  '1', '--warmup', '0'], arms=['direct_s4_fast', 'lovasz_mmseg'],
            att=['--tokens', '64', '--landmarks', '16', '--heads', '2',
                 '--head-dims', '8', '--repeats', '1'])
    return dict(
        device='cuda',
        loss=['--shape', '8', '171', '512', '512', '--reps', '10',
              '--warmup', '2'],
        step=['--config', R50, '--input', '8', '512', '512', '--reps', '10',
              '--warmup', '2'],
        att=['--tokens', '4096', '16384', '65536', '--landmarks', '256',
             '--repeats', '5', '--max-exact-tokens', '16384'], arms=ARMS)


def _loss_rows(res: dict) -> list:
    rows = ['| loss | ms | x CE | peak MB | x CE mem |', '|---|---|---|---|---|']
    for n, r in res['losses'].items():
        mem = '-' if r['peak_mb'] is None else f"{r['peak_mb']:.1f}"
        mm = '-' if r['mem_vs_ce'] is None else f"{r['mem_vs_ce']:.2f}"
        rows.append(f"| {n} | {r['median_ms']:.2f} | {r['ratio_vs_ce']:.2f}"
                    f' | {mem} | {mm} |')
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('out', help='output folder')
    p.add_argument('--dry-run', action='store_true',
                   help='tiny shapes on the CPU (CI)')
    args = p.parse_args(argv)
    import attention_cost
    import loss_cost
    import train_step_cost
    os.makedirs(args.out, exist_ok=True)
    cfg = plan(args.dry_run)
    dev = ['--device', cfg['device']]
    walls, md = {}, [f"# segreg GPU suite ({'dry run' if args.dry_run else 'full'})", '']

    def run(name, fn):
        t0 = time.perf_counter()
        out = fn()
        walls[name] = time.perf_counter() - t0
        print(f'[suite] {name}: {walls[name]:.1f} s', flush=True)
        return out

    for tag, extra in (('fp32', []), ('bf16', ['--dtype', 'bfloat16',
                                               '--autocast'])):
        path = osp.join(args.out, f'loss_{tag}.json')
        run(f'loss_{tag}', lambda: loss_cost.main(
            cfg['loss'] + dev + extra + ['--out', path]))
        with open(path) as f:
            res = json.load(f)
        md += [f"## Losses, {'x'.join(map(str, res['shape']))}, {tag}"
               f" ({res['device_name']})", ''] + _loss_rows(res) + ['']
    path = osp.join(args.out, 'train_step.json')
    step = run('train_step', lambda: train_step_cost.main(
        cfg['step'] + dev + ['--autocast', '--arms', *cfg['arms'], '--out',
                             path]))
    md += [f"## Train step, {osp.basename(step['config'])}, input "
           f"{'x'.join(map(str, step['input']))}, bf16", '',
           '| arm | ms | overhead (medians) | paired [quartiles] |',
           '|---|---|---|---|']
    md += [f"| {k} | {r['median_ms']:.1f} | {100 * r['added_vs_ce']:+.1f}% "
           f"| {100 * r['added_paired']:+.1f}% "
           f"[{100 * r['added_paired_q1']:+.1f}, "
           f"{100 * r['added_paired_q3']:+.1f}] |"
           for k, r in step['arms'].items()] + ['']
    path = osp.join(args.out, 'attention.json')
    att = run('attention', lambda: attention_cost.main(
        cfg['att'] + dev + ['--methods', 'sdpa', 'nystrom', 'nystrom-mod',
                            '--out', path]))
    md += ['## Attention (forward)', '', '| method | tokens | ms | peak MB |',
           '|---|---|---|---|']
    for r in att['rows']:
        ms = r.get('time_ms')
        pk = r.get('peak_mb')
        md.append(f"| {r['method']} | {r['tokens']} | "
                  f"{'-' if ms is None else f'{ms:.2f}'} | "
                  f"{'-' if pk is None else f'{pk:.0f}'} |")
    md += ['', f'wall seconds: {json.dumps({k: round(v, 1) for k, v in walls.items()})}']
    with open(osp.join(args.out, 'summary.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    with open(osp.join(args.out, 'suite.json'), 'w') as f:
        json.dump(dict(dry_run=args.dry_run, wall_s=walls), f, indent=1)
    print('\n'.join(md))
    return 0


if __name__ == '__main__':
    sys.exit(main())
