#!/usr/bin/env python
"""Cost of segmentation losses on the same logits: forward + backward time
and peak memory of cross-entropy, Dice, Lovasz-Softmax and segreg's
dual-projected losses, with ratios to CE and to Lovasz.

Repetitions are interleaved (every repetition runs every loss once, in a
rotating order) and the median is reported, so slow drifts of a shared
machine hit all losses alike. Peak memory is the peak of the memory
allocated during one forward + backward above what was allocated before it
(CUDA: ``torch.cuda.max_memory_allocated``; CPU: the PyTorch profiler's
allocation trace).

Labels are blobs of ``--classes-per-image`` classes per image (not uniform
noise), with ``--ignore-frac`` of the pixels at ignore_index 255, so Lovasz
and the class-wise losses see a realistic number of present classes.

Examples:
    # CPU default: the demo batch (8 x 12 x 96 x 96)
    python benchmarks/loss_cost.py

    # the COCO-Stuff training shape on a GPU (issue 6's reference shape)
    python benchmarks/loss_cost.py --device cuda --shape 8 171 512 512

    # also a whole train step of a model with and without the loss
    python benchmarks/loss_cost.py --model-config \\
        configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

#: name -> mmseg loss config (built through the MODELS registry)
LOSSES: Dict[str, dict] = {
    'ce': dict(type='CrossEntropyLoss', use_sigmoid=False,
               avg_non_ignore=True),
    'dice': dict(type='DiceLoss', use_sigmoid=False, activate=True),
    'lovasz': dict(type='LovaszLoss', loss_type='multi_class',
                   classes='present', per_image=False, reduction='none'),
    # the defaults: direct hinge bound, every 4th pixel
    'dual_iou': dict(type='DualIoULoss'),
    'dual_fbeta': dict(type='DualFbetaLoss', beta=1.0),
    # the direct bound on every pixel
    'dual_iou_full': dict(type='DualIoULoss', sample_stride=1),
    # the paper's per-batch LP (the configuration before issue 7)
    'dual_iou_exact': dict(type='DualIoULoss', solver='exact',
                           sample_stride=1),
    'dual_iou_exact_s4': dict(type='DualIoULoss', solver='exact'),
    # persistent class-level duals
    'dual_iou_da': dict(type='DualIoULoss', solver='dual_ascent',
                        sample_stride=1),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shape', nargs=4, type=int, default=[8, 12, 96, 96],
                   metavar=('B', 'C', 'H', 'W'))
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--losses', nargs='+', default=list(LOSSES),
                   help=f'subset of {list(LOSSES)}')
    p.add_argument('--reps', type=int, default=None,
                   help='timed repetitions (default 15 on CPU, 50 on GPU)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--classes-per-image', type=int, default=12)
    p.add_argument('--ignore-frac', type=float, default=0.05)
    p.add_argument('--dtype', default='float32',
                   choices=['float32', 'bfloat16', 'float16'],
                   help='dtype of the logits (losses compute in float32)')
    p.add_argument('--model-config', default=None,
                   help='also time a whole train step (forward, losses, '
                   'backward) of this config with CE alone vs CE + each '
                   'other loss')
    p.add_argument('--model-input', nargs=3, type=int, default=None,
                   metavar=('B', 'H', 'W'),
                   help='input of the train-step timing (default: B of '
                   '--shape and the config crop size)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None,
                   help='JSON file (default: benchmarks/results/'
                   'loss_cost_<device>_<B>x<C>x<H>x<W>.json)')
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
def make_inputs(shape, device, dtype, classes_per_image, ignore_frac, seed):
    """Logits (requires grad) and blob labels with some ignore pixels."""
    B, C, H, W = shape
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=g)
    cells = (max(1, H // 16), max(1, W // 16))
    labels = torch.empty(B, H, W, dtype=torch.long)
    for b in range(B):
        classes = torch.randperm(C, generator=g)[:min(C, classes_per_image)]
        # skewed class sizes: a few big, many small
        probs = torch.rand(len(classes), generator=g)**3 + 1e-3
        cell = classes[torch.multinomial(probs, cells[0] * cells[1], True,
                                         generator=g)].reshape(1, 1, *cells)
        labels[b] = torch.nn.functional.interpolate(
            cell.float(), size=(H, W), mode='nearest').long()[0, 0]
    labels[torch.rand(B, H, W, generator=g) < ignore_frac] = 255
    logits = logits.to(device=device, dtype=getattr(torch, dtype))
    return logits.requires_grad_(), labels.to(device)


def build_loss(name: str, num_classes: int, device):
    from mmseg.registry import MODELS
    cfg = dict(LOSSES[name])
    if cfg['type'].startswith('Dual'):
        cfg['num_classes'] = num_classes
    return MODELS.build(cfg).to(device)


def _sync(device):
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def _peak_bytes(fn: Callable[[], None], device) -> float:
    """Peak allocation above the starting point during ``fn()``."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    # op events carry their own (self) allocations minus frees; '[memory]'
    # events are the frees / allocations outside any op (e.g. a tensor
    # released by Python). Their running sum in time order is the live size.
    deltas = []
    for e in prof.events():
        d = e.cpu_memory_usage if e.name == '[memory]' else \
            e.self_cpu_memory_usage
        if d:
            deltas.append((e.time_range.start, d))
    live = peak = 0
    for _, d in sorted(deltas, key=lambda t: t[0]):
        live += d
        peak = max(peak, live)
    return float(peak)


def time_losses(names: List[str], logits, labels, reps: int, warmup: int,
                device) -> Dict[str, dict]:
    C = logits.shape[1]
    losses = {n: build_loss(n, C, device) for n in names}

    def step(n):
        logits.grad = None
        out = losses[n](logits, labels, weight=None, ignore_index=255)
        out.backward()

    for _ in range(warmup):
        for n in names:
            step(n)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            _sync(device)
            t0 = time.perf_counter()
            step(n)
            _sync(device)
            times[n].append(time.perf_counter() - t0)
    def measured_step(n):
        # the previous step's gradient is freed outside the profiled region:
        # a free of memory allocated before would count as a negative delta
        logits.grad = None
        return _peak_bytes(lambda: step(n), device)

    out = {}
    for n in names:
        ts = sorted(times[n])
        q = statistics.quantiles(ts, n=4) if len(ts) >= 4 else [ts[0]] * 3
        out[n] = dict(median_ms=statistics.median(ts) * 1e3,
                      q1_ms=q[0] * 1e3, q3_ms=q[2] * 1e3,
                      peak_mb=measured_step(n) / 2**20,
                      config=LOSSES[n])
    return out


# ---------------------------------------------------------------------------
def time_train_step(config: str, names: List[str], inputs, reps: int,
                    warmup: int, device) -> Dict[str, dict]:
    """A model's forward + losses + backward, CE alone vs CE + each loss."""
    import copy

    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    cfg = Config.fromfile(config)
    B, H, W = inputs
    num_classes = cfg.model.decode_head.num_classes
    arms = {'ce': None}
    arms.update({n: LOSSES[n] for n in names if n != 'ce'})
    models = {}
    for arm, extra in arms.items():
        mcfg = copy.deepcopy(cfg.model.to_dict())
        mcfg.pop('data_preprocessor', None)
        mcfg['pretrained'] = None
        ce = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                  avg_non_ignore=True)
        losses = [ce]
        if extra is not None:
            extra = dict(extra)
            if extra['type'].startswith('Dual'):
                extra['num_classes'] = num_classes
            losses.append(extra)
        mcfg['decode_head']['loss_decode'] = losses
        torch.manual_seed(0)
        model = MODELS.build(mcfg).to(device)
        model.train()
        models[arm] = model
    g = torch.Generator().manual_seed(1)
    img = torch.randn(B, 3, H, W, generator=g).to(device)
    samples = []
    for b in range(B):
        ds = SegDataSample()
        ds.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, H, W), generator=g).to(device))
        ds.set_metainfo(dict(img_shape=(H, W), pad_shape=(H, W)))
        samples.append(ds)

    def step(arm):
        model = models[arm]
        model.zero_grad(set_to_none=True)
        losses = model.loss(img, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()

    keys = list(models)
    for _ in range(warmup):
        for k in keys:
            step(k)
    times = {k: [] for k in keys}
    for r in range(reps):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            _sync(device)
            t0 = time.perf_counter()
            step(k)
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: dict(median_ms=statistics.median(v) * 1e3) for k, v in
            times.items()}


# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    import segreg  # noqa: F401  (registers the dual losses)
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    device = torch.device(args.device)
    if device.type == 'cpu':
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    reps = args.reps or (50 if device.type == 'cuda' else 15)
    for n in args.losses:
        if n not in LOSSES:
            raise SystemExit(f'unknown loss {n!r}; known: {list(LOSSES)}')
    names = list(dict.fromkeys(['ce'] + args.losses))
    logits, labels = make_inputs(args.shape, device, args.dtype,
                                 args.classes_per_image, args.ignore_frac,
                                 args.seed)
    res = time_losses(names, logits, labels, reps, args.warmup, device)
    ce = res['ce']['median_ms']
    lov = res.get('lovasz', {}).get('median_ms')
    for n, r in res.items():
        r['ratio_vs_ce'] = r['median_ms'] / ce
        r['ratio_vs_lovasz'] = (r['median_ms'] / lov) if lov else None
    B, C, H, W = args.shape
    print(f'\nloss forward+backward on logits {B}x{C}x{H}x{W} '
          f'({args.dtype}, {device}, {reps} interleaved reps, median)')
    print(f"{'loss':<18}{'ms':>10}{'IQR ms':>18}{'x CE':>8}{'x Lovasz':>10}"
          f"{'peak MB':>10}")
    for n, r in res.items():
        lv = f"{r['ratio_vs_lovasz']:.3f}" if r['ratio_vs_lovasz'] else '-'
        print(f"{n:<18}{r['median_ms']:>10.2f}"
              f"{r['q1_ms']:>9.2f}-{r['q3_ms']:<8.2f}{r['ratio_vs_ce']:>8.2f}"
              f"{lv:>10}{r['peak_mb']:>10.1f}")
    step_res = None
    if args.model_config:
        from mmengine.config import Config
        cfg = Config.fromfile(args.model_config)
        crop = cfg.get('crop_size', (H, W))
        model_in = args.model_input or (B, crop[0], crop[1])
        step_res = time_train_step(args.model_config, names, model_in, reps,
                                   args.warmup, device)
        base = step_res['ce']['median_ms']
        print(f'\ntrain step of {osp.basename(args.model_config)} on input '
              f'{model_in[0]}x3x{model_in[1]}x{model_in[2]} (forward, CE + '
              'loss, backward)')
        for k, r in step_res.items():
            r['added_vs_ce'] = r['median_ms'] / base - 1.0
            name = 'ce' if k == 'ce' else 'ce+' + k
            print(f"{name:<22}{r['median_ms']:>10.1f} ms  "
                  f"{100 * r['added_vs_ce']:+.1f}%")
    out = args.out or osp.join(
        REPO, 'benchmarks', 'results',
        f'loss_cost_{device.type}_{B}x{C}x{H}x{W}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    device_name = (torch.cuda.get_device_name(device)
                   if device.type == 'cuda' else platform.processor()
                   or platform.machine())
    with open(out, 'w') as f:
        json.dump(dict(shape=args.shape, dtype=args.dtype,
                       device=str(device), device_name=device_name,
                       torch=torch.__version__, reps=reps,
                       threads=torch.get_num_threads(),
                       classes_per_image=args.classes_per_image,
                       ignore_frac=args.ignore_frac, losses=res,
                       train_step=step_res), f, indent=1)
    print(f'\nwrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
