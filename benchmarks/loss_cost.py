#!/usr/bin/env python
"""Fair cost table of segmentation losses on the same logits: forward +
backward time and peak memory of cross-entropy (``F.cross_entropy`` and
mmseg's wrapper), Dice (mmseg's, and with ignore pixels masked), soft
Jaccard / JML, Lovasz-Softmax (mmseg's per-class sort and a one-sort batched
form) and every segreg form, each at full resolution (``_s1``) and at the
default's subsampling (every 4th pixel in each direction, ``_s4``), as
registered (``_fast``: ``DualIoULoss`` on the fused op segreg.ops.hinge_sums
and, for the exact LP, the Newton threshold) and as before issue 17
(``_old``: the frozen copy of the former loss that the tests keep as their
oracle, tests/test_models/test_losses/_legacy_dual_metric_loss.py), with
ratios to CE and to Lovasz.

Repetitions are interleaved (every repetition runs every loss once, in a
rotating order) and the median is reported, so slow drifts of a shared
machine hit all losses alike. Peak memory is the peak of the memory
allocated during one forward + backward above what was allocated before it
(CUDA: ``torch.cuda.max_memory_allocated``; CPU: the PyTorch profiler's
allocation trace); ``x CE mem`` is its ratio to CE's. On CPU glibc's
allocator is pinned to its heap first (:func:`pin_cpu_allocator`;
``--system-malloc`` leaves it alone), so that no loss is timed with the page
faults of freshly mapped buffers. The first call of every loss (warm-up) is
timed too: ``first_call_s`` in the JSON, the compile time of the
``_compiled`` forms. The minor page faults of every timed call are counted
(``faults``; median per call): where the kernel pages idle memory out by
itself (a DAMON ``pageout`` scheme, as on the VMs this project is measured
on: ``proactive_reclaim`` in the JSON) pinning cannot keep every buffer
resident, and the column shows which loss paid for it.

Labels: ``--labels blob`` (default) are blobs of ``--classes-per-image``
classes per image with skewed sizes, ``uniform`` is i.i.d. noise over all
classes; ``--ignore-frac`` of the pixels are at ignore_index 255. Logits are
``randn + --logit-signal * onehot(label)`` so that the bounds' true-positive
and false-positive terms are both active (with pure noise every class has
``tp < 0`` and the direct bound ignores ``fp``).

Examples:
    # CPU default: the demo batch (8 x 12 x 96 x 96), every loss
    python benchmarks/loss_cost.py

    # the COCO-Stuff training shape on a GPU, under bf16 autocast
    python benchmarks/loss_cost.py --device cuda --shape 8 171 512 512 \
        --dtype bfloat16 --autocast

    # also a whole train step of a model with and without the loss
    python benchmarks/loss_cost.py --model-config \
        configs/demo/deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py \
        --losses direct_s4_fast direct_s1_fast
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
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO, osp.join(REPO, 'benchmarks')):
    if _p not in sys.path:
        sys.path.insert(0, _p)

#: name -> mmseg loss config (built through the MODELS registry)
MMSEG_LOSSES: Dict[str, dict] = {
    'ce_mmseg': dict(type='CrossEntropyLoss', use_sigmoid=False,
                     avg_non_ignore=True),
    'dice_mmseg': dict(type='DiceLoss', use_sigmoid=False, activate=True),
    'lovasz_mmseg': dict(type='LovaszLoss', loss_type='multi_class',
                         classes='present', per_image=False,
                         reduction='none'),
}
#: implementation suffixes of segreg's forms (:func:`dual_module`)
PATHS = ('old', 'fast', 'compiled')
#: name -> (solver, sample_stride) of segreg's forms
FORMS: Dict[str, tuple] = {
    f'{solver}_s{k}': (solver, k)
    for solver in ('direct', 'exact', 'dual_ascent') for k in (1, 4)}
#: every loss of the table, in its order
LOSSES: List[str] = (['ce', 'ce_mmseg', 'dice_mmseg', 'dice_masked', 'jml',
                      'lovasz_mmseg', 'lovasz_batched'] +
                     [f'{f}_{p}' for f in FORMS
                      for p in PATHS])
#: the pre-issue-17 names of the same losses
ALIASES = {'lovasz': 'lovasz_mmseg', 'dice': 'dice_mmseg',
           'dual_iou': 'direct_s4_fast', 'dual_iou_full': 'direct_s1_fast',
           'dual_iou_exact': 'exact_s1_fast',
           'dual_iou_exact_s4': 'exact_s4_fast',
           'dual_iou_da': 'dual_ascent_s1_fast'}


# ---------------------------------------------------------------------------
# reference implementations of the anchors (vectorised over classes, ignore
# pixels masked before any reduction; docs/loss_cost.md)
# ---------------------------------------------------------------------------
def _masked_probs(logits: Tensor, labels: Tensor, ignore_index: int = 255):
    """Softmax (B, C, N), one-hot labels and the valid mask (B, 1, N)."""
    B, C = logits.shape[:2]
    p = logits.float().softmax(dim=1).reshape(B, C, -1)
    y = labels.reshape(B, -1)
    valid = (y != ignore_index) & (y >= 0) & (y < C)
    onehot = F.one_hot(torch.where(valid, y, 0), C).permute(0, 2, 1)
    v = valid.unsqueeze(1).to(p.dtype)
    return p * v, onehot.to(p.dtype) * v, v


def dice_masked(logits: Tensor, labels: Tensor, smooth: float = 1.0,
                ignore_index: int = 255) -> Tensor:
    """``1 - mean_c (2 sum p y + s) / (sum p + sum y + s)`` over the batch,
    present classes, ignore pixels masked (segmentation_models_pytorch's
    convention)."""
    p, y, _ = _masked_probs(logits, labels, ignore_index)
    inter = (p * y).sum(dim=(0, 2))
    card = p.sum(dim=(0, 2)) + y.sum(dim=(0, 2))
    present = y.sum(dim=(0, 2)) > 0
    dice = (2 * inter + smooth) / (card + smooth)
    return ((1 - dice) * present).sum() / present.sum().clamp(min=1)


def jaccard_metric_loss(logits: Tensor, labels: Tensor, smooth: float = 1.0,
                        ignore_index: int = 255) -> Tensor:
    """Soft Jaccard in the JML form (Wang & Blaschko 2023): ``tp = (|p| +
    |y| - |p - y|) / 2`` with L1 norms over the batch, ``1 - (tp + s) /
    (|p| + |y| - tp + s)``, mean over present classes."""
    p, y, _ = _masked_probs(logits, labels, ignore_index)
    sp, sy = p.sum(dim=(0, 2)), y.sum(dim=(0, 2))
    diff = (p - y).abs().sum(dim=(0, 2))
    tp = (sp + sy - diff) / 2
    present = sy > 0
    iou = (tp + smooth) / (sp + sy - tp + smooth)
    return ((1 - iou) * present).sum() / present.sum().clamp(min=1)


def lovasz_batched(logits: Tensor, labels: Tensor,
                   ignore_index: int = 255) -> Tensor:
    """Lovasz-Softmax over present classes with ONE sort of all classes'
    errors (key ``class - error``) instead of one sort per class."""
    B, C = logits.shape[:2]
    p = logits.float().softmax(dim=1).permute(0, 2, 3, 1).reshape(-1, C)
    y = labels.reshape(-1)
    valid = (y != ignore_index) & (y >= 0) & (y < C)
    p, y = p[valid], y[valid]
    fg = F.one_hot(y, C).to(p.dtype)                       # (P, C)
    err = (fg - p).abs()
    P = err.shape[0]
    cls = torch.arange(C, device=p.device).expand(P, C)
    key = cls.to(torch.float64) * 2.0 - err.detach().double()  # err <= 1
    order = torch.argsort(key.t().reshape(-1))           # class-major
    err_s = err.t().reshape(-1)[order].view(C, P)
    fg_s = fg.t().reshape(-1)[order].view(C, P)
    gts = fg_s.sum(dim=1, keepdim=True)
    inter = gts - fg_s.cumsum(dim=1)
    union = gts + (1 - fg_s).cumsum(dim=1)
    jac = 1 - inter / union
    grad = torch.cat([jac[:, :1], jac[:, 1:] - jac[:, :-1]], dim=1)
    per_class = (err_s * grad).sum(dim=1)
    present = gts.squeeze(1) > 0
    return (per_class * present).sum() / present.sum().clamp(min=1)


def build_loss(name: str, num_classes: int, device) -> Callable:
    """``fn(logits, labels)`` of a loss of the table."""
    from mmseg.registry import MODELS
    name = ALIASES.get(name, name)
    if name == 'ce':
        return lambda x, y: F.cross_entropy(x, y, ignore_index=255)
    if name == 'dice_masked':
        return dice_masked
    if name == 'jml':
        return jaccard_metric_loss
    if name == 'lovasz_batched':
        return lovasz_batched
    if name in MMSEG_LOSSES:
        mod = MODELS.build(dict(MMSEG_LOSSES[name])).to(device)
        return lambda x, y: mod(x, y, weight=None, ignore_index=255)
    form, path = name.rsplit('_', 1)
    if form not in FORMS or path not in PATHS:
        raise SystemExit(f'unknown loss {name!r}; known: {LOSSES} '
                         f'(aliases {sorted(ALIASES)})')
    mod = dual_module(form, path, num_classes).to(device)
    return lambda x, y: mod(x, y, weight=None, ignore_index=255)


def dual_module(form: str, path: str, num_classes: int):
    """A segreg form as an ``nn.Module``: the registered loss (``'fast'``:
    its default ``kernel='sparse'``; ``'compiled'``: ``kernel='compiled'``)
    or the implementation before issue 17 (``'old'``, the tests' frozen
    oracle: ``class_scores`` + ``classwise_negative_hinge`` + scatters, and
    the sorted water-filling threshold)."""
    solver, stride = FORMS[form]
    kw = dict(num_classes=num_classes, solver=solver, sample_stride=stride)
    if path in ('fast', 'compiled'):
        from mmseg.registry import MODELS
        kernel = 'compiled' if path == 'compiled' else 'sparse'
        return MODELS.build(dict(type='DualIoULoss', kernel=kernel, **kw))
    import importlib.util
    legacy = osp.join(REPO, 'tests', 'test_models', 'test_losses',
                      '_legacy_dual_metric_loss.py')
    spec = importlib.util.spec_from_file_location('segreg_legacy_loss',
                                                  legacy)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.DualIoULoss(**kw)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shape', nargs=4, type=int, default=[8, 12, 96, 96],
                   metavar=('B', 'C', 'H', 'W'))
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--losses', nargs='+', default=list(LOSSES),
                   help=f'subset of {LOSSES} (CE is always timed)')
    p.add_argument('--reps', type=int, default=None,
                   help='timed repetitions (default 15 on CPU, 50 on GPU)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--labels', default='blob', choices=['blob', 'uniform'])
    p.add_argument('--classes-per-image', type=int, default=12)
    p.add_argument('--ignore-frac', type=float, default=0.05)
    p.add_argument('--logit-signal', type=float, default=2.0,
                   help='logits = randn + this * onehot(label)')
    p.add_argument('--dtype', default='float32',
                   choices=['float32', 'bfloat16', 'float16'],
                   help='dtype of the logits')
    p.add_argument('--autocast', action='store_true',
                   help='run every loss under torch.autocast(dtype)')
    p.add_argument('--no-memory', action='store_true',
                   help='skip the peak-memory pass')
    p.add_argument('--model-config', default=None,
                   help='also time a whole train step (forward, losses, '
                   'backward) of this config with CE alone vs CE + each '
                   'segreg form (benchmarks/train_step_cost.py)')
    p.add_argument('--model-input', nargs=3, type=int, default=None,
                   metavar=('B', 'H', 'W'),
                   help='input of the train-step timing (default: B of '
                   '--shape and the config crop size)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--system-malloc', action='store_true',
                   help="CPU: leave glibc's allocator as it is (default: "
                   'pinned to the heap, see pin_cpu_allocator)')
    p.add_argument('--out', default=None,
                   help='JSON file (default: benchmarks/results/'
                   'loss_cost_<device>_<B>x<C>x<H>x<W>.json)')
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
def make_inputs(shape, device, dtype, classes_per_image, ignore_frac, seed,
                labels='blob', logit_signal=2.0):
    """Logits (requires grad) and labels with some ignore pixels."""
    B, C, H, W = shape
    g = torch.Generator().manual_seed(seed)
    if labels == 'uniform':
        lab = torch.randint(0, C, (B, H, W), generator=g)
    else:
        cells = (max(1, H // 16), max(1, W // 16))
        lab = torch.empty(B, H, W, dtype=torch.long)
        for b in range(B):
            classes = torch.randperm(C, generator=g)[:min(C,
                                                          classes_per_image)]
            # skewed class sizes: a few big, many small
            probs = torch.rand(len(classes), generator=g)**3 + 1e-3
            cell = classes[torch.multinomial(probs, cells[0] * cells[1], True,
                                             generator=g)
                           ].reshape(1, 1, *cells)
            lab[b] = F.interpolate(cell.float(), size=(H, W),
                                   mode='nearest').long()[0, 0]
    logits = torch.randn(B, C, H, W, generator=g)
    if logit_signal:
        logits += logit_signal * F.one_hot(lab, C).permute(0, 3, 1, 2)
    lab[torch.rand(B, H, W, generator=g) < ignore_frac] = 255
    logits = logits.to(device=device, dtype=getattr(torch, dtype))
    return logits.requires_grad_(), lab.to(device)


def pin_cpu_allocator() -> bool:
    """Serve every CPU allocation below 1 GiB from glibc's heap and never
    trim it (``mallopt``), so that a freed buffer is reused instead of
    returned to the OS.

    Why: by default glibc maps each large buffer afresh (``mmap``) unless a
    recent free raised its threshold; the page faults of a fresh 3.5 MB
    buffer cost a few ms on a VM, more than cross-entropy itself at
    8 x 12 x 96 x 96, and which loss pays them depends on the allocation
    history of the process (cross-entropy measured 1.5-6.8 ms in different
    processes of the same run). Pinned, every loss is timed on reused
    memory, as PyTorch's caching allocator gives on GPU. Returns False where
    it does not apply (not glibc).
    """
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library('c')
    if platform.system() != 'Linux' or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3   # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and \
            bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


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


def minor_faults() -> int:
    """This process's minor page faults so far (0 where not available)."""
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


def proactive_reclaim(root: str = '/sys/kernel/mm/damon/admin/kdamonds'
                      ) -> Optional[str]:
    """The kernel's DAMON schemes that page memory out on their own, e.g.
    ``'damon: pageout'``, or None. Why: such a scheme pages out memory
    that is idle for a while, the heap's free chunks included, so the loss
    that reuses them pays the faults again whatever the allocator does
    (``faults`` in the table)."""
    acts = []
    try:
        for k in sorted(os.listdir(root)):
            kd = osp.join(root, k)
            if not osp.isdir(kd):
                continue
            with open(osp.join(kd, 'state')) as f:
                if f.read().strip() != 'on':
                    continue
            for dirpath, _, files in os.walk(osp.join(kd, 'contexts')):
                if 'action' in files:
                    with open(osp.join(dirpath, 'action')) as f:
                        act = f.read().strip()
                    if act in ('pageout', 'cold', 'lru_deprio'):  # reclaim
                        acts.append(act)
    except OSError:
        return None
    return f"damon: {', '.join(sorted(set(acts)))}" if acts else None


def interleaved(steps: Dict[str, Callable[[], None]], reps: int,
                warmup: int, device, first: Optional[Dict[str, float]] = None,
                faults: Optional[Dict[str, List[int]]] = None
                ) -> Dict[str, List[float]]:
    """Seconds of each step, repetitions interleaved in a rotating order
    (``first``, if given, receives the seconds of each step's first warm-up
    call: the compile time of a compiled kernel; ``faults`` the minor page
    faults of each timed call)."""
    names = list(steps)
    first = {} if first is None else first
    for _ in range(warmup):
        for n in names:
            t0 = time.perf_counter()
            steps[n]()
            _sync(device)
            first.setdefault(n, time.perf_counter() - t0)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(reps):
        for n in names[r % len(names):] + names[:r % len(names)]:
            _sync(device)
            f0 = minor_faults() if faults is not None else 0
            t0 = time.perf_counter()
            steps[n]()
            _sync(device)
            times[n].append(time.perf_counter() - t0)
            if faults is not None:
                faults.setdefault(n, []).append(minor_faults() - f0)
    return times


def _summary(ts: List[float]) -> dict:
    ts = sorted(ts)
    q = statistics.quantiles(ts, n=4) if len(ts) >= 4 else [ts[0]] * 3
    return dict(median_ms=statistics.median(ts) * 1e3, q1_ms=q[0] * 1e3,
                q3_ms=q[2] * 1e3)


def time_losses(names: List[str], logits, labels, reps: int, warmup: int,
                device, autocast: bool = False, memory: bool = True
                ) -> Dict[str, dict]:
    C = logits.shape[1]
    losses = {n: build_loss(n, C, device) for n in names}
    ac_dtype = logits.dtype if logits.dtype != torch.float32 else \
        torch.bfloat16

    def step(n):
        logits.grad = None
        with torch.autocast(device_type=torch.device(device).type,
                            dtype=ac_dtype, enabled=autocast):
            out = losses[n](logits, labels)
        out.backward()

    first: Dict[str, float] = {}
    faults: Dict[str, List[int]] = {}
    times = interleaved({n: (lambda n=n: step(n)) for n in names}, reps,
                        warmup, device, first, faults)

    def measured_step(n):
        # the previous step's gradient is freed outside the profiled region:
        # a free of memory allocated before would count as a negative delta
        logits.grad = None
        return _peak_bytes(lambda: step(n), device)

    out = {}
    for n in names:
        out[n] = _summary(times[n])
        # the first forward + backward: torch.compile's compile time for
        # the '_compiled' forms, a warm-up for the others
        out[n]['first_call_s'] = first.get(n)
        # CPU: page faults of a timed call (reused memory: about 0)
        out[n]['minor_faults'] = statistics.median(faults[n]) \
            if faults.get(n) else None
        out[n]['peak_mb'] = measured_step(n) / 2**20 if memory else None
    return out


# ---------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    import segreg  # noqa: F401  (registers the dual losses)
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    device = torch.device(args.device)
    pinned = False
    if device.type == 'cpu':
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
        pinned = not args.system_malloc and pin_cpu_allocator()
    reps = args.reps or (50 if device.type == 'cuda' else 15)
    wanted = [ALIASES.get(n, n) for n in args.losses]
    for n in wanted:
        if n not in LOSSES:
            raise SystemExit(f'unknown loss {n!r}; known: {LOSSES} '
                             f'(aliases {sorted(ALIASES)})')
    names = list(dict.fromkeys(['ce'] + wanted))
    logits, labels = make_inputs(args.shape, device, args.dtype,
                                 args.classes_per_image, args.ignore_frac,
                                 args.seed, args.labels, args.logit_signal)
    res = time_losses(names, logits, labels, reps, args.warmup, device,
                      args.autocast, not args.no_memory)
    ce = res['ce']
    lov = res.get('lovasz_mmseg', {}).get('median_ms')
    for n, r in res.items():
        r['ratio_vs_ce'] = r['median_ms'] / ce['median_ms']
        r['ratio_vs_lovasz'] = (r['median_ms'] / lov) if lov else None
        r['mem_vs_ce'] = (r['peak_mb'] / ce['peak_mb']) if \
            r['peak_mb'] is not None and ce['peak_mb'] else None
    B, C, H, W = args.shape
    mode = f"{args.dtype}{' autocast' if args.autocast else ''}"
    print(f'\nloss forward+backward on logits {B}x{C}x{H}x{W} '
          f'({mode}, {args.labels} labels, {device}, '
          f'{torch.get_num_threads() if device.type == "cpu" else ""}'
          f'{" thread(s), " if device.type == "cpu" else ""}'
          f'{reps} interleaved reps, median'
          f'{", heap-pinned allocator" if pinned else ""})')
    reclaim = proactive_reclaim() if device.type == 'cpu' else None
    if reclaim:
        print(f'note: the kernel pages idle memory out by itself ({reclaim}):'
              ' a loss that reuses such memory pays page faults (faults '
              'column); compare ratios of runs with few faults')
    print(f"{'loss':<22}{'ms':>10}{'IQR ms':>18}{'x CE':>8}{'x Lovasz':>10}"
          f"{'peak MB':>10}{'x CE mem':>10}{'faults':>8}")
    for n, r in res.items():
        lv = f"{r['ratio_vs_lovasz']:.3f}" if r['ratio_vs_lovasz'] else '-'
        pk = f"{r['peak_mb']:.1f}" if r['peak_mb'] is not None else '-'
        mm = f"{r['mem_vs_ce']:.2f}" if r['mem_vs_ce'] is not None else '-'
        fl = f"{r['minor_faults']:.0f}" if r['minor_faults'] is not None \
            else '-'
        print(f"{n:<22}{r['median_ms']:>10.2f}"
              f"{r['q1_ms']:>9.2f}-{r['q3_ms']:<8.2f}{r['ratio_vs_ce']:>8.2f}"
              f"{lv:>10}{pk:>10}{mm:>10}{fl:>8}")
    step_res = None
    if args.model_config:
        import train_step_cost
        from mmengine.config import Config
        cfg = Config.fromfile(args.model_config)
        crop = cfg.get('crop_size', (H, W))
        model_in = args.model_input or (B, crop[0], crop[1])
        arms = [n for n in names if n.rsplit('_', 1)[0] in FORMS]
        step_res = train_step_cost.time_train_step(
            args.model_config, arms, model_in, reps, args.warmup, device)
        train_step_cost.print_table(step_res, args.model_config, model_in)
    out = args.out or osp.join(
        REPO, 'benchmarks', 'results',
        f'loss_cost_{device.type}_{B}x{C}x{H}x{W}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    device_name = (torch.cuda.get_device_name(device)
                   if device.type == 'cuda' else platform.processor()
                   or platform.machine())
    with open(out, 'w') as f:
        json.dump(dict(shape=args.shape, dtype=args.dtype,
                       autocast=args.autocast, labels=args.labels,
                       logit_signal=args.logit_signal,
                       device=str(device), device_name=device_name,
                       torch=torch.__version__, reps=reps,
                       threads=torch.get_num_threads(),
                       cpu_allocator_pinned=pinned,
                       proactive_reclaim=reclaim,
                       classes_per_image=args.classes_per_image,
                       ignore_frac=args.ignore_frac, losses=res,
                       train_step=step_res), f, indent=1)
    print(f'\nwrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
