#!/usr/bin/env python
"""Train-step overhead of a regularizer: a model's forward, losses, backward
and SGD step with cross-entropy alone vs CE + one extra loss, interleaved.

Arms are the loss names of benchmarks/loss_cost.py that are segreg forms
(``direct_s4_fast`` is the registered default regularizer,
``direct_s1_fast`` the direct bound at every pixel, ``*_old`` the
implementation before issue 17, kept as the tests' oracle) or
``lovasz_mmseg``. Every arm gets its own copy of the
model (same seed), and each repetition runs every arm once in a rotating
order; the median step time and the overhead over CE alone are reported
(JSON + table).

Examples:
    # the demo model on CPU (1 thread)
    OMP_NUM_THREADS=1 python benchmarks/train_step_cost.py

    # DeepLabV3+ R50-D8 at 512 x 512, batch 8, bf16 autocast, on a GPU
    python benchmarks/train_step_cost.py --device cuda --autocast \\
        --config configs/deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py \\
        --input 8 512 512 --arms direct_s4_fast direct_s1_fast lovasz_mmseg
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import sys
from typing import Dict, List, Optional, Sequence

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO, osp.join(REPO, 'benchmarks')):
    if _p not in sys.path:
        sys.path.insert(0, _p)

DEMO = osp.join(REPO, 'configs', 'demo',
                'deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py')
DEFAULT_ARMS = ['direct_s4_fast', 'direct_s1_fast', 'direct_s4_old',
                'direct_s1_old']


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=DEMO)
    p.add_argument('--input', nargs=3, type=int, default=None,
                   metavar=('B', 'H', 'W'),
                   help='batch and crop (default: 8 and the config crop)')
    p.add_argument('--arms', nargs='+', default=DEFAULT_ARMS)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--autocast', action='store_true',
                   help='bf16 autocast around forward and losses')
    p.add_argument('--system-malloc', action='store_true',
                   help="CPU: leave glibc's allocator as it is (default: "
                   'pinned to its heap, loss_cost.pin_cpu_allocator)')
    p.add_argument('--reps', type=int, default=None,
                   help='timed repetitions (default 10 on CPU, 20 on GPU)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--out', default=None, help='JSON file')
    return p.parse_args(argv)


def _extra_loss(arm: str, num_classes: int):
    """The extra loss module of an arm (CE is always the first loss)."""
    from mmseg.registry import MODELS

    import loss_cost
    if arm in loss_cost.MMSEG_LOSSES:
        return MODELS.build(dict(loss_cost.MMSEG_LOSSES[arm]))
    form, path = arm.rsplit('_', 1)
    if form not in loss_cost.FORMS:
        raise SystemExit(f'unknown arm {arm!r}: use a segreg form of '
                         f'{loss_cost.LOSSES} or lovasz_mmseg')
    return loss_cost.dual_module(form, path, num_classes)


def time_train_step(config: str, arms: Sequence[str], inputs, reps: int,
                    warmup: int, device, autocast: bool = False
                    ) -> Dict[str, dict]:
    """Median step time of CE alone and of CE + each arm's loss."""
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    import loss_cost
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    B, H, W = inputs
    num_classes = cfg.model.decode_head.num_classes
    models = {}
    for arm in ['ce'] + [a for a in arms if a != 'ce']:
        mcfg = copy.deepcopy(cfg.model.to_dict())
        mcfg.pop('data_preprocessor', None)
        mcfg['pretrained'] = None
        if isinstance(mcfg.get('backbone'), dict):
            mcfg['backbone'].pop('init_cfg', None)
        mcfg['decode_head']['loss_decode'] = [dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)]
        torch.manual_seed(0)
        model = MODELS.build(mcfg)
        if arm != 'ce':
            model.decode_head.loss_decode.append(_extra_loss(arm,
                                                             num_classes))
        model = model.to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        models[arm] = (model, opt)
    g = torch.Generator().manual_seed(1)
    img = torch.randn(B, 3, H, W, generator=g).to(device)
    samples = []
    for b in range(B):
        lab = torch.randint(0, num_classes, (1, H, W), generator=g)
        lab[torch.rand(1, H, W, generator=g) < 0.05] = 255
        ds = SegDataSample()
        ds.gt_sem_seg = PixelData(data=lab.to(device))
        ds.set_metainfo(dict(img_shape=(H, W), pad_shape=(H, W)))
        samples.append(ds)

    def step(arm):
        model, opt = models[arm]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=torch.device(device).type,
                            dtype=torch.bfloat16, enabled=autocast):
            losses = model.loss(img, samples)
            total = sum(v for k, v in losses.items() if 'loss' in k)
        total.backward()
        opt.step()

    times = loss_cost.interleaved({a: (lambda a=a: step(a)) for a in models},
                                  reps, warmup, device)
    res = {a: dict(median_ms=statistics.median(t) * 1e3)
           for a, t in times.items()}
    base = res['ce']['median_ms']
    for a, r in res.items():
        r['added_vs_ce'] = r['median_ms'] / base - 1.0
        # paired: each repetition's step over CE's step of the same
        # repetition (adjacent in time), so that a drift of the machine
        # between repetitions cancels; median and quartiles
        paired = sorted(t / c - 1.0 for t, c in zip(times[a], times['ce']))
        q = statistics.quantiles(paired, n=4) if len(paired) >= 4 else \
            [paired[0]] * 3
        r['added_paired'] = statistics.median(paired)
        r['added_paired_q1'], r['added_paired_q3'] = q[0], q[2]
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
        print(f"{name:<24}{r['median_ms']:>10.1f} ms  "
              f"{100 * r['added_vs_ce']:+.1f}%{pr}")


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    import segreg  # noqa: F401
    from mmengine.config import Config
    device = torch.device(args.device)
    pinned = False
    if device.type == 'cpu':
        import loss_cost
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
        pinned = not args.system_malloc and loss_cost.pin_cpu_allocator()
    reps = args.reps or (20 if device.type == 'cuda' else 10)
    cfg = Config.fromfile(args.config)
    crop = cfg.get('crop_size', (512, 512))
    inputs = tuple(args.input or (8, crop[0], crop[1]))
    res = time_train_step(args.config, args.arms, inputs, reps, args.warmup,
                          device, args.autocast)
    print_table(res, args.config, inputs)
    out = dict(config=args.config, input=list(inputs), device=str(device),
               device_name=(torch.cuda.get_device_name(device)
                            if device.type == 'cuda' else
                            platform.processor() or platform.machine()),
               autocast=args.autocast, torch=torch.__version__, reps=reps,
               threads=torch.get_num_threads(),
               cpu_allocator_pinned=pinned, arms=res)
    path = args.out or osp.join(REPO, 'benchmarks', 'results',
                                f'train_step_{device.type}.json')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'\nwrote {path}')
    return out


if __name__ == '__main__':
    main()
