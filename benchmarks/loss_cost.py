#!/usr/bin/env python
"""Cost of segmentation losses at COCO-Stuff's scale: forward + backward of
each loss on the same logits, as a ratio to cross-entropy and as a share of
one train step of DeepLabV3 R50-D8 at the same batch and crop.

Default: a batch of 2 x 171 x 256 x 256 on the CPU, 1 thread. Labels are
Voronoi regions (segments of about 8 classes per image, 5 % ignored pixels
on the region boundaries) and the logits a segmentation model's: made at
1/8 resolution and upsampled, right at about 73 % of the pixels
(benchmarks/common.py; the JSON's ``inputs`` says what the batch looks
like).

Arms (``--arms``; CE is always timed):

    ce              F.cross_entropy
    direct_s4       DualIoULoss(): the default (fused op, every 4th pixel
                    in each spatial dim)
    direct_s1       DualIoULoss(sample_stride=1): fused op, every pixel
    plain_s1        the default's math in plain autograd
                    (segreg.ops.hinge_counts(..., reference=True)), every
                    pixel: mean over present classes of 1 - bound
    plain_s2        the same at every 2nd pixel (a quarter of the pixels)
    exact_s1        DualIoULoss(solver='exact', sample_stride=1)
    dual_ascent_s1  DualIoULoss(solver='dual_ascent', sample_stride=1)
    dataset_s1      DualIoULoss(solver='dataset', sample_stride=1)
    ratio_s1        DualIoULoss(solver='ratio', sample_stride=1)
    jml             JaccardMetricLoss (every pixel)
    ce_jml          0.25 CE + 0.75 JML (Wang & Blaschko's mix)
    lovasz          mmseg's LovaszLoss as configs/dualreg/lovasz_* use it
    dice            MaskedDiceLoss (every pixel)

and ``train_step``: forward + backward + SGD step of the model of
``--model-config`` (DeepLabV3 R50-D8, COCO-Stuff 164k, no pretrained
weights, SyncBN as BN) on ``B x 3 x H x W`` images, timed in the same run.

Every repetition times every arm once, in a freshly shuffled order; the
median per arm is reported, as a ratio to CE's (``x CE``) and as a
percentage of the train step's median (``% of train step``; the step
includes its own cross-entropy). Peak memory is the peak allocated during one
extra forward + backward above what was allocated before it
(``torch.cuda.max_memory_allocated`` on a GPU, the PyTorch profiler's
allocation trace on the CPU), and ``x CE mem`` its ratio to CE's. On the CPU
glibc's allocator is pinned to its heap (``--system-malloc`` leaves it), so
that no arm pays the page faults of freshly mapped buffers.

Writes ``loss_cost.json`` and ``loss_cost.md`` (the table) into ``--out``
(default benchmarks/results/; ``--name`` renames both).

Examples:
    # the full CPU table, written where the repository keeps it (about
    # 5 minutes on 2 cores)
    python benchmarks/loss_cost.py --out benchmarks

    # a quick look: 2 repetitions
    python benchmarks/loss_cost.py --quick

    # on a GPU: 8 x 171 x 512 x 512, bf16 autocast
    python benchmarks/loss_cost.py --device cuda --batch 8 --size 512 \\
        --dtype bfloat16 --autocast
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import sys
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO, osp.join(REPO, 'benchmarks')):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import common  # noqa: E402

R50_D8 = osp.join(REPO, 'configs', 'deeplabv3',
                  'deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py')

#: name -> loss config built by mmseg's registry (also train_step_cost's arms)
LOSS_CFGS: Dict[str, dict] = {
    'direct_s4': dict(type='DualIoULoss'),
    'direct_s1': dict(type='DualIoULoss', sample_stride=1),
    'exact_s1': dict(type='DualIoULoss', solver='exact', sample_stride=1),
    'dual_ascent_s1': dict(type='DualIoULoss', solver='dual_ascent',
                           sample_stride=1),
    'dataset_s1': dict(type='DualIoULoss', solver='dataset',
                       sample_stride=1),
    'ratio_s1': dict(type='DualIoULoss', solver='ratio', sample_stride=1),
    'jml': dict(type='JaccardMetricLoss'),
    'lovasz': dict(type='LovaszLoss', loss_type='multi_class',
                   classes='present', per_image=False, reduction='none'),
    'dice': dict(type='MaskedDiceLoss'),
}
#: name -> the row's label in the table
LABELS: Dict[str, str] = {
    'ce': 'cross-entropy',
    'direct_s4': 'DualIoU default (fused, stride 4)',
    'direct_s1': 'DualIoU direct, every pixel (fused)',
    'plain_s1': 'DualIoU direct, plain autograd, every pixel',
    'plain_s2': 'DualIoU direct, plain autograd, stride 2',
    'exact_s1': "DualIoU solver='exact', every pixel",
    'dual_ascent_s1': "DualIoU solver='dual_ascent', every pixel",
    'dataset_s1': "DualIoU solver='dataset', every pixel",
    'ratio_s1': "DualIoU solver='ratio', every pixel",
    'jml': 'JML (Jaccard metric loss)',
    'ce_jml': '0.25 CE + 0.75 JML',
    'lovasz': 'Lovasz-Softmax (mmseg)',
    'dice': 'masked Dice',
}
ARMS: List[str] = list(LABELS)


def plain_direct_loss(logits: Tensor, labels: Tensor,
                      stride: int = 1) -> Tensor:
    """The default's loss in plain autograd: the mean over the present
    classes of ``1 - tp / (n + fp)`` (``segreg.ops.hinge_bound_from_counts``)
    from ``segreg.ops.hinge_counts(..., reference=True)``, on every
    ``stride``-th pixel in each spatial dim (each weighted ``stride^2``)."""
    from segreg.ops import hinge_bound_from_counts, hinge_counts
    from segreg.ops.soft_jaccard import strided_pixels
    weight = None
    if stride > 1:
        logits, labels, weight = strided_pixels(logits, labels, None, stride)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        tp, fp, n = hinge_counts(logits.float(), labels, weight,
                                 reference=True)
        bound = hinge_bound_from_counts(tp, fp, n, 1.0, 'iou')
        present = (n > 0).to(bound.dtype)
        return ((1.0 - bound) * present).sum() / present.sum().clamp(min=1)


def build_arm(name: str, num_classes: int, device) -> Callable:
    """``fn(logits, labels)`` of an arm (ignore label 255)."""
    from mmseg.registry import MODELS

    def ce(x, y):
        return F.cross_entropy(x, y, ignore_index=255)

    if name == 'ce':
        return ce
    if name.startswith('plain_s'):
        stride = int(name[len('plain_s'):])
        return lambda x, y: plain_direct_loss(x, y, stride)
    if name == 'ce_jml':
        jml = MODELS.build(dict(LOSS_CFGS['jml'], loss_weight=0.75))
        return lambda x, y: 0.25 * ce(x, y) + jml(x, y, ignore_index=255)
    if name not in LOSS_CFGS:
        raise SystemExit(f'unknown arm {name!r}; known: {ARMS}')
    cfg = dict(LOSS_CFGS[name])
    if cfg['type'] == 'DualIoULoss':
        cfg['num_classes'] = num_classes
    mod = MODELS.build(cfg).to(device)
    return lambda x, y: mod(x, y, weight=None, ignore_index=255)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--classes', type=int, default=171)
    p.add_argument('--size', type=int, default=256,
                   help='height and width of the logits and the images')
    p.add_argument('--reps', type=int, default=None,
                   help='interleaved repetitions (default 15; --quick: 2)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed repetitions first (default 1)')
    p.add_argument('--quick', action='store_true',
                   help='2 repetitions, no warm-up beyond one (a smoke run)')
    p.add_argument('--threads', type=int, default=1,
                   help='torch threads on the CPU (default 1)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--arms', nargs='+', default=None,
                   help=f'subset of {ARMS} (default all; CE always)')
    p.add_argument('--dtype', default='float32',
                   choices=['float32', 'bfloat16'],
                   help='dtype of the logits')
    p.add_argument('--autocast', action='store_true',
                   help='run every arm (and the train step) under '
                   'torch.autocast(bfloat16)')
    p.add_argument('--model-config', default=R50_D8,
                   help='model of the train step (default DeepLabV3 R50-D8)')
    p.add_argument('--no-model', action='store_true',
                   help='skip the train step')
    p.add_argument('--no-memory', action='store_true',
                   help='skip the peak-memory pass')
    p.add_argument('--system-malloc', action='store_true',
                   help="CPU: leave glibc's allocator as it is")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results'),
                   help='folder of NAME.json and NAME.md (default '
                   'benchmarks/results)')
    p.add_argument('--name', default='loss_cost',
                   help='file name of the JSON and the table, without '
                   'suffix (default loss_cost)')
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = 2 if args.quick else 15
    if args.warmup is None:
        args.warmup = 1
    if args.batch < 2 and not args.no_model:
        p.error('the train step needs --batch >= 2 (BatchNorm after the '
                "ASPP head's image pooling); or pass --no-model")
    arms = args.arms or ARMS
    for n in arms:
        if n not in ARMS:
            p.error(f'unknown arm {n!r}; known: {ARMS}')
    args.arms = list(dict.fromkeys(['ce'] + arms))
    return args


def measure(args: argparse.Namespace) -> dict:
    """Time (and measure) every arm and the train step; the JSON's body."""
    device = torch.device(args.device)
    B, C, S = args.batch, args.classes, args.size
    logits, labels = common.make_batch((B, C, S, S), seed=args.seed)
    logits, labels = logits.to(device), labels.to(device)
    inputs = common.input_stats(logits, labels)
    logits = logits.to(getattr(torch, args.dtype)).requires_grad_()
    fns = {n: build_arm(n, C, device) for n in args.arms}

    def loss_step(n):
        logits.grad = None
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=args.autocast):
            out = fns[n](logits, labels)
        out.backward()

    steps = {n: (lambda n=n: loss_step(n)) for n in args.arms}
    model = None
    if not args.no_model:
        model, opt, nc = common.build_model(args.model_config, device,
                                            seed=args.seed)
        img, samples = common.model_inputs(B, S, S, nc, device,
                                           seed=args.seed + 1)
        steps['train_step'] = lambda: common.train_step(
            model, opt, img, samples, args.autocast)
    times, faults = common.interleaved(steps, args.reps, args.warmup,
                                       device, seed=args.seed)
    res = {}
    for n in steps:
        res[n] = dict(common.summary(times[n]),
                      minor_faults=statistics.median(faults[n]))
        if n != 'train_step':
            res[n]['label'] = LABELS[n]
    peak = {}
    if not args.no_memory:
        for n in args.arms:
            logits.grad = None  # freed outside the measured call
            peak[n] = common.peak_bytes(steps[n], device)
        if model is not None and device.type == 'cuda':
            peak['train_step'] = common.peak_bytes(steps['train_step'],
                                                   device)
    ce = res['ce']['median_ms']
    step_ms = res['train_step']['median_ms'] if model is not None else None
    for n, r in res.items():
        r['peak_mb'] = peak[n] / 2**20 if n in peak else None
        if n == 'train_step':
            continue
        r['x_ce'] = r['median_ms'] / ce
        r['pct_of_step'] = 100 * r['median_ms'] / step_ms if step_ms else None
        r['x_ce_mem'] = (peak[n] / peak['ce']) if n in peak and \
            peak.get('ce') else None
    train = res.pop('train_step', None)
    if train is not None:
        train.update(config=osp.relpath(args.model_config, REPO),
                     input=[B, 3, S, S],
                     what="forward + backward + SGD step with the "
                     "config's losses")
    return dict(
        shape=[B, C, S, S], dtype=args.dtype, autocast=args.autocast,
        reps=args.reps, warmup=args.warmup, seed=args.seed,
        order='interleaved, shuffled every repetition',
        inputs=inputs, arms=res, train_step=train)


def _mb(x: float) -> str:
    return f'{x:.0f}' if x >= 10 else f'{x:.2f}'


def markdown(res: dict) -> str:
    """The table of a result, with what ran where."""
    m = res['machine']
    B, C, H, W = res['shape']
    dev = (f"{m['device_name']}, {m['cpu_count']} cores, "
           f"{res['threads']} thread(s)" if m['device'] == 'cpu'
           else m['device_name'])
    mode = res['dtype'] + (' under bf16 autocast' if res['autocast'] else '')
    inp = res['inputs']
    load = '' if not m['loadavg'] else \
        f"; load average at the start {m['loadavg'][0]:.2f}"
    lines = [
        f'# Loss cost at {B} x {C} x {H} x {W}', '',
        f"{m['date']}, {dev}; torch {m['torch']}; logits {mode}; forward + "
        f"backward, median of {res['reps']} interleaved repetitions "
        f'(shuffled order){load}.', '',
        f"Inputs: Voronoi label maps, {inp['classes_per_image']:.1f} classes "
        f"per image, {100 * inp['ignored']:.0f} % ignored; pixel accuracy "
        f"{inp['pixel_acc']:.2f}, mean top probability "
        f"{inp['mean_top_prob']:.2f}, {inp['active_per_pixel']:.2f} classes "
        'per pixel above sigmoid(-1).', '']
    t = res.get('train_step')
    if t:
        lines += [f"Train step: {osp.basename(t['config'])}, input "
                  f"{' x '.join(map(str, t['input']))}, {t['what']}: "
                  f"{t['median_ms']:.0f} ms (median).", '']
    lines += ['| loss | ms | IQR ms | x CE | % of train step | peak MB '
              '| x CE mem |', '|---|---|---|---|---|---|---|']
    for n, r in res['arms'].items():
        pct = '-' if r['pct_of_step'] is None else f"{r['pct_of_step']:.1f}"
        pk = '-' if r['peak_mb'] is None else _mb(r['peak_mb'])
        xm = '-' if r['x_ce_mem'] is None else f"{r['x_ce_mem']:.2f}"
        lines.append(
            f"| {r['label']} (`{n}`) | {r['median_ms']:.1f} | "
            f"{r['q1_ms']:.1f}-{r['q3_ms']:.1f} | {r['x_ce']:.2f} | {pct} | "
            f'{pk} | {xm} |')
    if t and t.get('peak_mb') is not None:
        lines += ['', f"Train step peak: {_mb(t['peak_mb'])} MB."]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmseg.utils import register_all_modules

    import segreg  # noqa: F401  (registers segreg's losses)
    register_all_modules(init_default_scope=True)
    setup = common.setup_device(args.device, args.threads,
                                args.system_malloc)
    machine = common.machine(args.device)
    res = measure(args)
    res = dict(res, machine=machine, **setup)
    os.makedirs(args.out, exist_ok=True)
    md = markdown(res)
    path = osp.join(args.out, args.name)
    with open(path + '.json', 'w') as f:
        json.dump(res, f, indent=1)
    with open(path + '.md', 'w') as f:
        f.write(md)
    print('\n' + md)
    print(f'wrote {path}.json and {path}.md')
    return res


if __name__ == '__main__':
    main()
