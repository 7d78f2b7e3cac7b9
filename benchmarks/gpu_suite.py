#!/usr/bin/env python
"""The GPU suite in one process: loss tables, train steps, attention, heads.

Run through benchmarks/gpu_suite.sh (which installs what is missing from a
local wheel folder); ``--dry-run`` uses tiny shapes on the CPU so that the
test suite can run it end to end in seconds (tests/test_benchmarks.py).

Writes into OUT:

* ``loss_fp32.json`` / ``.md`` and ``loss_bf16.json`` / ``.md``:
  benchmarks/loss_cost.py at 8 x 171 x 512 x 512, fp32 and bf16 autocast:
  every arm (CE, the default, each form at every pixel, the plain-autograd
  reference, JML, Lovasz, masked Dice), time, peak memory, ratios to CE and
  the share of a DeepLabV3 R50-D8 train step at 8 x 3 x 512 x 512 timed in
  the same run;
* ``train_step.json``: benchmarks/train_step_cost.py, DeepLabV3 R50-D8,
  batch 8, 512 x 512, bf16 autocast: CE alone vs CE + the default vs CE +
  the default at every pixel vs CE + Lovasz, with the peak memory of each;
* ``attention.json``: benchmarks/attention_cost.py, the Nystrom op and head
  vs SDPA at 4k / 16k / 64k tokens, time and peak memory;
* ``head_cost.json`` / ``.md``: benchmarks/head_cost.py, the COCO-Stuff
  configs' DeepLabV3+ ASPP head and Nystrom head, forward + backward at
  4,096 and 16,384 tokens, batch 4, time and peak memory;
* ``summary.md`` (every table) and ``suite.json`` (wall time of each part).
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

R50_D8 = osp.join(REPO, 'configs', 'deeplabv3',
                  'deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py')
DEMO = osp.join(REPO, 'configs', 'demo',
                'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
#: extra losses of the train-step table
STEP_ARMS = ['direct_s4', 'direct_s1', 'lovasz']


def plan(dry: bool) -> dict:
    """Arguments of every part (full GPU run or CPU dry run)."""
    if dry:
        return dict(
            device='cpu',
            loss=['--batch', '2', '--classes', '5', '--size', '32',
                  '--reps', '1', '--warmup', '0', '--model-config', DEMO],
            step=['--config', DEMO, '--input', '2', '32', '32', '--reps',
                  '1', '--warmup', '0'],
            att=['--tokens', '64', '--landmarks', '16', '--heads', '2',
                 '--head-dims', '8', '--repeats', '1'],
            head=['--tokens', '16', '--quick', '--threads', '1',
                  '--system-malloc'])
    return dict(
        device='cuda',
        loss=['--batch', '8', '--classes', '171', '--size', '512',
              '--reps', '10', '--warmup', '2', '--model-config', R50_D8],
        step=['--config', R50_D8, '--input', '8', '512', '512', '--reps',
              '10', '--warmup', '2'],
        att=['--tokens', '4096', '16384', '65536', '--landmarks', '256',
             '--repeats', '5', '--max-exact-tokens', '16384'],
        head=['--tokens', '4096', '16384', '--batch', '4', '--reps', '10',
              '--warmup', '2'])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('out', help='output folder')
    p.add_argument('--dry-run', action='store_true',
                   help='tiny shapes on the CPU (CI)')
    args = p.parse_args(argv)
    import attention_cost
    import head_cost
    import loss_cost
    import train_step_cost
    os.makedirs(args.out, exist_ok=True)
    cfg = plan(args.dry_run)
    dev = ['--device', cfg['device']]
    walls = {}
    md = [f"# segreg GPU suite ({'dry run' if args.dry_run else 'full'})",
          '']

    def run(name, fn):
        t0 = time.perf_counter()
        out = fn()
        walls[name] = time.perf_counter() - t0
        print(f'[suite] {name}: {walls[name]:.1f} s', flush=True)
        return out

    for tag, extra in (('fp32', []), ('bf16', ['--dtype', 'bfloat16',
                                               '--autocast'])):
        res = run(f'loss_{tag}', lambda extra=extra, tag=tag: loss_cost.main(
            cfg['loss'] + dev + extra + ['--out', args.out, '--name',
                                         f'loss_{tag}']))
        table = loss_cost.markdown(res).splitlines()
        md += [f'## {table[0][2:]}, {tag}'] + table[1:] + ['']
    path = osp.join(args.out, 'train_step.json')
    step = run('train_step', lambda: train_step_cost.main(
        cfg['step'] + dev + ['--autocast', '--arms', *STEP_ARMS, '--out',
                             path]))
    md += [f"## Train step, {osp.basename(step['config'])}, input "
           f"{'x'.join(map(str, step['input']))}, bf16 autocast", '',
           '| arm | ms | overhead (medians) | paired [quartiles] | peak MB |',
           '|---|---|---|---|---|']
    for k, r in step['arms'].items():
        pk = '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"
        md.append(f"| {'ce' if k == 'ce' else 'ce + ' + k} | "
                  f"{r['median_ms']:.1f} | {100 * r['added_vs_ce']:+.1f}% | "
                  f"{100 * r['added_paired']:+.1f}% "
                  f"[{100 * r['added_paired_q1']:+.1f}, "
                  f"{100 * r['added_paired_q3']:+.1f}] | {pk} |")
    md.append('')
    path = osp.join(args.out, 'attention.json')
    att = run('attention', lambda: attention_cost.main(
        cfg['att'] + dev + ['--methods', 'sdpa', 'nystrom', 'nystrom-mod',
                            '--out', path]))
    md += [f"## Attention (forward), {att['env']['device']}", '',
           '| method | tokens | ms | peak MB | status |',
           '|---|---|---|---|---|']
    for r in att['rows']:
        ms, pk = r.get('time_ms'), r.get('peak_mem_mb')
        md.append(f"| {r['method']} | {r['tokens']} | "
                  f"{'-' if ms is None else f'{ms:.2f}'} | "
                  f"{'-' if pk is None else f'{pk:.1f}'} | {r['status']} |")
    heads = run('head_cost', lambda: head_cost.main(
        cfg['head'] + dev + ['--out', args.out]))
    md += ['#' + head_cost.table(heads)] + ['']  # its title one level down
    rounded = {k: round(v, 1) for k, v in walls.items()}
    md += ['', f'wall seconds: {json.dumps(rounded)}']
    with open(osp.join(args.out, 'summary.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    with open(osp.join(args.out, 'suite.json'), 'w') as f:
        json.dump(dict(dry_run=args.dry_run, wall_s=walls), f, indent=1)
    print('\n'.join(md))
    return 0


if __name__ == '__main__':
    sys.exit(main())
