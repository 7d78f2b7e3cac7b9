#!/usr/bin/env python
"""Per-rank loss time and bytes communicated at world size 1, 2, 4 (CPU,
gloo): what segreg's pixel metric losses cost under data parallelism, and a
model of how it grows to 64 and 512 ranks.

For each world size of ``--worlds`` the losses run in ``world`` processes
(``torch.multiprocessing``, start method ``spawn`` by default) joined by a
gloo process group on 127.0.0.1 at a free port. All ranks are spawned once
(as many as the largest world); for world ``W`` ranks ``0 .. W-1`` form a
fresh group and the others wait for the next world. **World 1 runs without
a process group** (as a single-GPU run does): the script checks that
``segreg.utils.dist.world_size()`` is then 1, and the counters show that no
collective ran.

Every rank builds the same losses (``--losses``; the segreg forms through
``mmseg.registry.MODELS.build(dict(type='DualIoULoss', solver=...,
sample_stride=...))``, the soft-set anchors as ``JaccardMetricLoss`` /
``MaskedDiceLoss``) and its own local batch ``--shape B C H W`` (the per-GPU
batch): rank-seeded Voronoi label maps with ``--ignore-frac`` ignore pixels
and a segmentation model's logits (requires grad; ``make_batch`` of
benchmarks/common.py).

**Bytes.** On every rank the collectives of ``torch.distributed``
(``all_reduce``, ``all_gather``, ``all_gather_into_tensor``, ``broadcast``,
``reduce``, ``reduce_scatter*``, ``scatter``, ``gather``, ``all_to_all*``,
``send`` / ``recv``, ``barrier``: whichever exist) are replaced at module
level by counting wrappers. ``torch.distributed.nn.functional`` (the
differentiable collectives segreg uses) looks them up as attributes of
``torch.distributed`` at call time, so its forward and backward
collectives are counted too; the script checks this on every rank before
measuring (it raises if a differentiable all-reduce goes uncounted). One
call's bytes are those of its largest tensor argument, a list counting as
the sum of its tensors: ``all_reduce`` / ``broadcast`` count the tensor,
``all_gather`` the input times the world (the gathered list), a scatter's
root the whole list. That is the payload a rank hands to or receives from
the collective, not the wire traffic of one algorithm (a ring all-reduce
sends and receives about ``2 (W-1) / W`` times the payload per rank). Only
the outermost call counts (a collective implemented by another is not
counted twice), and only inside the measured forward + backward (not the
script's own barriers). ``bytes/step/rank`` is the mean over the timed
steps of the largest rank's count; ``collectives/step`` the number of
calls.

**Time.** Per step: a barrier, then one loss's forward + backward on that
rank's batch. Repetitions are interleaved (every repetition runs every loss
once, in a rotating order) after ``--warmup`` untimed ones; a step's time is
the slowest rank's, and the table gives its median (IQR in the JSON) and
the ratio to the same loss at world 1; ``comm ms`` is the median time
spent inside collectives, waiting for the other ranks included. On a CPU
the ranks share the cores: with more ranks than free cores, the ratio
measures the contention too, not only the communication.

**Growth model.** For each loss, over the worlds >= 2 measured, a least
squares fit ``bytes = a + b * world`` extrapolated to 64 and 512 ranks, and
whether the bytes depend on the world at all. The bytes are also counted (not
timed) at the local batch sizes of ``--count-batches`` (default: twice
``B``): ``batch_exponent`` is the slope of log bytes in log batch (0: only
C matters; 1: proportional to the local positives P). Nothing about the
forms is assumed: whatever the code communicates is what is counted.

Examples:
    # default: per-GPU batch 2 x 12 x 96 x 96, worlds 1 2 4, every loss
    OMP_NUM_THREADS=1 python benchmarks/dist_loss_cost.py

    # COCO-Stuff classes, a subset of losses
    python benchmarks/dist_loss_cost.py --shape 2 171 128 128 \\
        --losses direct_s4 exact_s1

    # CI: tiny shapes, worlds 1 2, 2 reps (about 30 s on a loaded 2-core
    # machine, mostly mmseg's import in every spawned rank)
    python benchmarks/dist_loss_cost.py --dry-run --out /tmp/dist.json
"""
from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import os
import os.path as osp
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from typing import Callable, Dict, List, Optional, Sequence

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO, osp.join(REPO, 'benchmarks')):
    if _p not in sys.path:
        sys.path.insert(0, _p)

#: name -> loss config (built through mmseg's MODELS registry)
LOSS_CFGS: Dict[str, dict] = {
    **{f'{solver}_s{k}': dict(type='DualIoULoss', solver=solver,
                              sample_stride=k)
       for solver in ('direct', 'exact', 'dual_ascent', 'dataset', 'ratio')
       for k in (1, 4)},
    **{f'jml_s{k}': dict(type='JaccardMetricLoss', sample_stride=k)
       for k in (1, 4)},
    **{f'dice_s{k}': dict(type='MaskedDiceLoss', sample_stride=k)
       for k in (1, 4)},
}
DEFAULT_LOSSES = ['direct_s1', 'direct_s4', 'exact_s1', 'dual_ascent_s1',
                  'dataset_s1', 'ratio_s1', 'jml_s1']
#: ranks of the growth model's extrapolation
EXTRAPOLATE_TO = (64, 512)
#: collectives wrapped when they exist in torch.distributed
COLLECTIVES = ('all_reduce', 'all_gather', 'all_gather_into_tensor',
               '_all_gather_base', 'broadcast', 'reduce', 'reduce_scatter',
               'reduce_scatter_tensor', '_reduce_scatter_base', 'scatter',
               'gather', 'all_to_all', 'all_to_all_single', 'send', 'recv',
               'isend', 'irecv', 'barrier')


# ---------------------------------------------------------------------------
# counting wrappers
# ---------------------------------------------------------------------------
class CommCounter:
    """Calls, bytes and seconds of the collectives while :attr:`active`.

    Attributes:
        active (bool): Count only while True (the measured step).
        calls (int): Outermost collective calls counted.
        bytes (int): Their payload (see the module docstring).
        seconds (float): Wall time spent inside them.
        by_name (dict): ``name -> [calls, bytes]``.
    """

    def __init__(self) -> None:
        self.active = False
        self._depth = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counts (not :attr:`active`)."""
        self.calls = 0
        self.bytes = 0
        self.seconds = 0.0
        self.by_name: Dict[str, List[int]] = {}


COUNTER = CommCounter()


def _payload(value: object) -> int:
    """Bytes of a tensor or the sum over a list / tuple of tensors."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_payload(v) for v in value)
    return 0


def _counting(name: str, fn: Callable) -> Callable:
    """``fn`` that adds its calls, bytes and time to :data:`COUNTER`."""
    try:
        sig: Optional[inspect.Signature] = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not COUNTER.active or COUNTER._depth:
            return fn(*args, **kwargs)
        values = list(args) + list(kwargs.values())
        if sig is not None:
            try:
                values = list(sig.bind(*args, **kwargs).arguments.values())
            except TypeError:
                pass
        nbytes = max([_payload(v) for v in values] + [0])
        COUNTER._depth += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            COUNTER.seconds += time.perf_counter() - t0
            COUNTER._depth -= 1
            COUNTER.calls += 1
            COUNTER.bytes += nbytes
            entry = COUNTER.by_name.setdefault(name, [0, 0])
            entry[0] += 1
            entry[1] += nbytes

    wrapper.__wrapped_by_dist_loss_cost__ = True
    return wrapper


def install_counters() -> List[str]:
    """Wrap the collectives of ``torch.distributed`` (once per process).

    Returns:
        list[str]: The names wrapped.
    """
    import torch.distributed as dist
    done = []
    for name in COLLECTIVES:
        fn = getattr(dist, name, None)
        if fn is None:
            continue
        if not getattr(fn, '__wrapped_by_dist_loss_cost__', False):
            setattr(dist, name, _counting(name, fn))
        done.append(name)
    return done


def check_counting() -> None:
    """Raise unless a differentiable all-reduce is counted (forward and
    backward); needs a process group of size > 1."""
    from torch.distributed.nn.functional import all_reduce
    x = torch.ones(3, requires_grad=True)
    COUNTER.reset()
    COUNTER.active = True
    try:
        all_reduce(x * 1.0).sum().backward()
    finally:
        COUNTER.active = False
    if COUNTER.calls != 2 or COUNTER.bytes != 2 * 3 * x.element_size():
        raise RuntimeError(
            'torch.distributed.nn.functional.all_reduce bypasses the '
            f'counting wrappers (counted {COUNTER.calls} calls, '
            f'{COUNTER.bytes} bytes; expected 2 and 24): patch where it '
            'looks its collectives up')
    COUNTER.reset()


# ---------------------------------------------------------------------------
# one rank
# ---------------------------------------------------------------------------
def build_losses(names: Sequence[str],
                 num_classes: int) -> Dict[str, Callable]:
    """``name -> fn(logits, labels)`` of the losses, built by the registry."""
    import segreg  # noqa: F401  (registers the losses in mmseg's MODELS)
    from mmseg.registry import MODELS
    out = {}
    for n in names:
        cfg = dict(LOSS_CFGS[n])
        if cfg['type'] == 'DualIoULoss':
            cfg['num_classes'] = num_classes
        mod = MODELS.build(cfg)
        out[n] = functools.partial(_call, mod)
    return out


def _call(mod: torch.nn.Module, logits: torch.Tensor,
          labels: torch.Tensor) -> torch.Tensor:
    """One loss value; the module's own parameter gradients are reset."""
    mod.zero_grad(set_to_none=True)
    return mod(logits, labels, weight=None, ignore_index=255)


def _inputs(args: argparse.Namespace, batch: int, rank: int, world: int,
            tag: int) -> tuple:
    """Rank-seeded ``(logits, labels)`` of local batch ``batch``."""
    from common import make_batch
    B, C, H, W = args.shape
    seed = args.seed + 1000 * rank + 100_000 * world + 10_000_000 * tag
    logits, labels = make_batch((batch, C, H, W), seed,
                                args.classes_per_image,
                                ignore_frac=args.ignore_frac)
    return logits.requires_grad_(), labels


def _measure_world(args: argparse.Namespace, rank: int, world: int,
                   port: int) -> dict:
    """Everything rank ``rank`` measures at world size ``world``."""
    import torch.distributed as dist
    from segreg.utils.dist import world_size
    if world > 1:
        dist.init_process_group(
            'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
            world_size=world, timeout=timedelta(seconds=args.timeout))
    try:
        if world_size() != world:
            raise RuntimeError(f'segreg.utils.dist.world_size() is '
                               f'{world_size()} at world {world}')
        if world > 1:
            check_counting()
        torch.manual_seed(args.seed + rank)
        C = args.shape[1]
        losses = build_losses(args.losses, C)
        logits, labels = _inputs(args, args.shape[0], rank, world, 0)

        def barrier():
            if world > 1:
                dist.barrier()

        def step(n, count):
            logits.grad = None
            COUNTER.active = count
            try:
                losses[n](logits, labels).backward()
            finally:
                COUNTER.active = False

        names = list(losses)
        for _ in range(args.warmup):
            for n in names:
                barrier()
                step(n, False)
        rec = {n: dict(ms=[], bytes=[], calls=[], comm_ms=[]) for n in names}
        by_name: Dict[str, Dict[str, List[int]]] = {n: {} for n in names}
        for r in range(args.reps):
            for n in names[r % len(names):] + names[:r % len(names)]:
                barrier()
                COUNTER.reset()
                t0 = time.perf_counter()
                step(n, True)
                dt = time.perf_counter() - t0
                rec[n]['ms'].append(dt * 1e3)
                rec[n]['bytes'].append(COUNTER.bytes)
                rec[n]['calls'].append(COUNTER.calls)
                rec[n]['comm_ms'].append(COUNTER.seconds * 1e3)
                by_name[n] = {k: list(v) for k, v in COUNTER.by_name.items()}
        # bytes (not time) at other local batch sizes
        for tag, b in enumerate(args.count_batches, start=1):
            x, y = _inputs(args, b, rank, world, tag)
            for n in names:
                barrier()
                COUNTER.reset()
                COUNTER.active = True
                try:
                    losses[n](x, y).backward()
                finally:
                    COUNTER.active = False
                rec[n].setdefault('count_batches', {})[str(b)] = \
                    COUNTER.bytes
        for n in names:
            rec[n]['by_collective'] = by_name[n]
        return rec
    finally:
        if world > 1:
            from segreg.utils.dist import teardown_process_group
            teardown_process_group()


def _wait_for(path: str) -> str:
    """The text of ``path`` once it exists (polled, the waiting rank idle).
    """
    while not osp.exists(path):
        time.sleep(0.1)
    with open(path) as f:
        return f.read()


def _worker(rank: int, args: argparse.Namespace, out_dir: str) -> None:
    """Spawned rank: every world it belongs to, results to ``out_dir``."""
    import warnings
    # segreg's differentiable collectives are deprecated in torch >= 2.5: one
    # warning per rank and call site, not about the measurement
    warnings.filterwarnings('ignore', category=FutureWarning,
                            message='torch.distributed.nn.functional')
    torch.set_num_threads(args.threads)
    install_counters()
    previous = None
    for world in args.worlds:
        if previous is not None:
            # ranks left out of the previous world wait here, idle, until
            # it is done (not in a store connect that could time out)
            _wait_for(osp.join(out_dir, f'w{previous}_done'))
        previous = world
        if rank >= world:
            continue
        port = 0
        if world > 1:
            # rank 0 picks the port just before its store listens on it
            path = osp.join(out_dir, f'w{world}_port')
            if rank == 0:
                with open(path + '.tmp', 'w') as f:
                    f.write(str(free_port()))
                os.replace(path + '.tmp', path)
            port = int(_wait_for(path))
        rec = _measure_world(args, rank, world, port)
        with open(osp.join(out_dir, f'w{world}_r{rank}.json'), 'w') as f:
            json.dump(rec, f)
        if rank == 0:
            # after the teardown's barrier: every rank of this world is done
            open(osp.join(out_dir, f'w{world}_done'), 'w').close()


# ---------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _quartiles(xs: List[float]) -> tuple:
    """``(median, q1, q3)``; min and max for fewer than 4 values."""
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) >= 4 else [xs[0], 0, xs[-1]]
    return statistics.median(xs), q[0], q[2]


def summarise(ranks: List[dict]) -> Dict[str, dict]:
    """Per loss, the step statistics over reps of the slowest / largest rank.

    ``median_ms`` (``q1_ms``, ``q3_ms``): of the slowest rank's time per
    step; ``comm_median_ms``: time inside collectives (waiting for the other
    ranks included); ``bytes_per_step`` / ``collectives_per_step``: mean
    over steps of the largest rank's count (``bytes_per_rank``: each rank's
    mean); ``by_collective``: ``name -> [calls, bytes]`` of rank 0's last
    timed step; ``bytes_at_batch``: ``--count-batches`` -> bytes.

    Args:
        ranks: One record of :func:`_measure_world` per rank.
    """
    out = {}
    for n in ranks[0]:
        reps = len(ranks[0][n]['ms'])
        step_ms = [max(r[n]['ms'][i] for r in ranks) for i in range(reps)]
        comm_ms = [max(r[n]['comm_ms'][i] for r in ranks)
                   for i in range(reps)]
        step_bytes = [max(r[n]['bytes'][i] for r in ranks)
                      for i in range(reps)]
        calls = [max(r[n]['calls'][i] for r in ranks) for i in range(reps)]
        med, q1, q3 = _quartiles(step_ms)
        counts = {b: max(r[n]['count_batches'][b] for r in ranks)
                  for b in ranks[0][n].get('count_batches', {})}
        out[n] = dict(
            median_ms=med, q1_ms=q1, q3_ms=q3,
            comm_median_ms=statistics.median(comm_ms),
            bytes_per_step=statistics.mean(step_bytes),
            bytes_min=min(step_bytes), bytes_max=max(step_bytes),
            bytes_per_rank=[statistics.mean(r[n]['bytes']) for r in ranks],
            collectives_per_step=statistics.mean(calls),
            by_collective=ranks[0][n]['by_collective'],
            bytes_at_batch=counts)
    return out


def growth_model(per_world: Dict[int, dict], batch: int) -> dict:
    """The fit ``bytes = a + b * world`` of one loss and its dependence on
    the local batch.

    Args:
        per_world: ``world -> summarise()[loss]``.
        batch: The timed local batch size ``B``.

    Returns:
        dict: ``bytes_by_world``, ``a``, ``b``, ``depends_on_world``,
        ``extrapolated`` (ranks -> bytes; None without two worlds >= 2),
        ``bytes_by_batch`` and ``batch_exponent`` (at the largest world),
        ``depends_on_batch``.
    """
    by_world = {w: r['bytes_per_step'] for w, r in sorted(per_world.items())}
    multi = {w: b for w, b in by_world.items() if w > 1}
    out = dict(bytes_by_world=by_world, a=None, b=None,
               depends_on_world=None, extrapolated=None,
               bytes_by_batch=None, batch_exponent=None,
               depends_on_batch=None)
    if len(multi) >= 2:
        ws, bs = list(multi), list(multi.values())
        wm, bm = statistics.mean(ws), statistics.mean(bs)
        slope = sum((w - wm) * (b - bm) for w, b in zip(ws, bs)) / \
            sum((w - wm)**2 for w in ws)
        a = bm - slope * wm
        out.update(a=a, b=slope,
                   depends_on_world=(max(bs) - min(bs)) > 0.01 * max(bs),
                   extrapolated={k: a + slope * k for k in EXTRAPOLATE_TO})
    if multi:
        top = per_world[max(multi)]
        counts = {batch: top['bytes_per_step'],
                  **{int(k): v for k, v in top['bytes_at_batch'].items()}}
        out['bytes_by_batch'] = dict(sorted(counts.items()))
        pts = [(math.log(k), math.log(v)) for k, v in counts.items()
               if v > 0 and k > 0]
        if len({p[0] for p in pts}) >= 2:
            xm = statistics.mean(p[0] for p in pts)
            ym = statistics.mean(p[1] for p in pts)
            out['batch_exponent'] = (
                sum((x - xm) * (y - ym) for x, y in pts) /
                sum((x - xm)**2 for x, _ in pts))
        vals = list(counts.values())
        if len(vals) >= 2:
            out['depends_on_batch'] = (max(vals) - min(vals)) > \
                0.01 * max(vals)
    return out


def _fmt_bytes(b: Optional[float]) -> str:
    if b is None:
        return '-'
    for unit, f in (('GB', 1e9), ('MB', 1e6), ('kB', 1e3)):
        if abs(b) >= f:
            return f'{b / f:.2f} {unit}'
    return f'{b:.0f} B'


def parse_args(
        argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shape', nargs=4, type=int, default=[2, 12, 96, 96],
                   metavar=('B', 'C', 'H', 'W'),
                   help='local (per-rank) batch of logits')
    p.add_argument('--worlds', nargs='+', type=int, default=[1, 2, 4])
    p.add_argument('--losses', nargs='+', default=list(DEFAULT_LOSSES),
                   help=f'subset of {list(LOSS_CFGS)}')
    p.add_argument('--reps', type=int, default=10,
                   help='timed interleaved repetitions')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--count-batches', nargs='*', type=int, default=None,
                   help='local batch sizes at which the bytes are also '
                   'counted, not timed (default: 2 B; none: empty)')
    p.add_argument('--classes-per-image', type=int, default=12,
                   help='classes drawn per image (benchmarks/common.py)')
    p.add_argument('--ignore-frac', type=float, default=0.05)
    p.add_argument('--threads', type=int,
                   default=int(os.environ.get('OMP_NUM_THREADS', '1')),
                   help='torch threads per rank (default $OMP_NUM_THREADS '
                   'or 1)')
    p.add_argument('--start-method', default='spawn',
                   choices=['spawn', 'fork', 'forkserver'],
                   help='of the rank processes; fork (the smoke test) '
                   'skips re-importing mmseg in every rank, but the parent '
                   'must not hold a process group or threads')
    p.add_argument('--timeout', type=float, default=300.0,
                   help='seconds a collective may wait (gloo timeout)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--quick', action='store_true',
                   help='2 reps after 1 warm-up (shape and worlds as given)')
    p.add_argument('--dry-run', action='store_true',
                   help='tiny: shape 1 4 8 8, worlds 1 2, 2 reps, 1 warmup '
                   '(explicit --shape / --worlds still win)')
    p.add_argument('--out', default=None,
                   help='JSON file (default: benchmarks/results/'
                   'dist_loss_cost_<B>x<C>x<H>x<W>.json)')
    args = p.parse_args(argv)
    given = set(a.split('=')[0] for a in (argv if argv is not None
                                          else sys.argv[1:]))
    if args.quick or args.dry_run:
        if '--reps' not in given:
            args.reps = 2
        if '--warmup' not in given:
            args.warmup = 1
    if args.dry_run:
        if '--shape' not in given:
            args.shape = [1, 4, 8, 8]
        if '--worlds' not in given:
            args.worlds = [1, 2]
    if args.count_batches is None:
        args.count_batches = [2 * args.shape[0]]
    args.count_batches = [b for b in dict.fromkeys(args.count_batches)
                          if b != args.shape[0]]
    args.worlds = sorted(set(args.worlds))
    for n in args.losses:
        if n not in LOSS_CFGS:
            p.error(f'unknown loss {n!r}; known: {list(LOSS_CFGS)}')
    if min(args.worlds) < 1 or args.reps < 1:
        p.error('worlds and reps must be >= 1')
    return args


def run(args: argparse.Namespace) -> Dict[int, Dict[str, dict]]:
    """Spawn the ranks; ``world -> loss -> summary``."""
    import torch.multiprocessing as mp
    # gloo resolves the host name to pick an interface; without DNS that
    # takes 30 s: all ranks are local, use the loopback device
    os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    # spawn pickles the worker by module name: import this file as a module
    import dist_loss_cost as mod
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(mod._worker, args=(args, tmp),
                           nprocs=max(args.worlds), join=True,
                           start_method=args.start_method)
        res = {}
        for w in args.worlds:
            ranks = []
            for r in range(w):
                with open(osp.join(tmp, f'w{w}_r{r}.json')) as f:
                    ranks.append(json.load(f))
            res[w] = summarise(ranks)
    return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print the table and the growth model, write the JSON."""
    args = parse_args(argv)
    t_start = time.perf_counter()
    res = run(args)
    wall_s = time.perf_counter() - t_start
    B, C, H, W = args.shape
    base = min(args.worlds)
    for w, losses in res.items():
        for n, r in losses.items():
            r['ratio_vs_world1'] = r['median_ms'] / \
                res[base][n]['median_ms'] if base == 1 else None
    models = {n: growth_model({w: res[w][n] for w in res}, B)
              for n in args.losses}
    print(f'\nper-rank loss forward+backward, local batch {B}x{C}x{H}x{W} '
          f'(Voronoi labels, CPU gloo, {args.threads} thread(s) per '
          f'rank, {os.cpu_count()} cores, {args.reps} interleaved reps, '
          'median of the slowest rank)\n')
    print('| loss | world | per-rank ms | x world-1 ms | bytes/step/rank '
          '| collectives/step | comm ms |')
    print('|---|---|---|---|---|---|---|')
    for n in args.losses:
        for w in args.worlds:
            r = res[w][n]
            ratio = f"{r['ratio_vs_world1']:.2f}" \
                if r['ratio_vs_world1'] is not None else '-'
            print(f"| {n} | {w} | {r['median_ms']:.2f} | {ratio} | "
                  f"{r['bytes_per_step']:.0f} | "
                  f"{r['collectives_per_step']:.1f} | "
                  f"{r['comm_median_ms']:.2f} |")
    print('\ngrowth model (bytes/step/rank = a + b * world over the worlds '
          '>= 2; batch exponent: slope of log bytes in log local batch)')
    for n, m in models.items():
        if m['extrapolated'] is not None:
            ext = ', '.join(f'{k}: {_fmt_bytes(v)}'
                            for k, v in m['extrapolated'].items())
            fit = (f"a={m['a']:.0f} b={m['b']:.1f} -> {ext}; "
                   f"{'grows with' if m['depends_on_world'] else 'flat in'}"
                   ' world')
        elif any(w > 1 for w in m['bytes_by_world']):
            fit = 'one world >= 2 measured: no fit'
        else:
            fit = 'no world >= 2 measured'
        if m['depends_on_batch'] is None:
            bat = 'batch dependence not measured'
        elif m['depends_on_batch']:
            bat = (f"grows with the local batch (P), exponent "
                   f"{m['batch_exponent']:.2f}")
        else:
            bat = 'independent of the local batch (O(C))'
        if all(v == 0 for v in m['bytes_by_world'].values()):
            fit, bat = 'no communication at any world', 'local batch only'
        print(f'  {n}: {fit}; {bat}')
    out = args.out or osp.join(REPO, 'benchmarks', 'results',
                               f'dist_loss_cost_{B}x{C}x{H}x{W}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(dict(
            shape=args.shape, worlds=args.worlds, losses=args.losses,
            loss_cfgs={n: LOSS_CFGS[n] for n in args.losses},
            reps=args.reps, warmup=args.warmup, labels='voronoi',
            classes_per_image=args.classes_per_image,
            ignore_frac=args.ignore_frac,
            count_batches=args.count_batches, seed=args.seed,
            start_method=args.start_method, world1='no process group',
            torch=torch.__version__, threads_per_rank=args.threads,
            cpu_count=os.cpu_count(), platform=platform.platform(),
            processor=platform.processor() or platform.machine(),
            loadavg=os.getloadavg() if hasattr(os, 'getloadavg') else None,
            wall_s=wall_s,
            results={str(w): r for w, r in res.items()},
            growth={n: dict(m, bytes_by_world={
                str(k): v for k, v in m['bytes_by_world'].items()},
                extrapolated=None if m['extrapolated'] is None else {
                    str(k): v for k, v in m['extrapolated'].items()},
                bytes_by_batch=None if m['bytes_by_batch'] is None else {
                    str(k): v for k, v in m['bytes_by_batch'].items()})
                for n, m in models.items()}), f, indent=1)
    print(f'\nwrote {out} ({wall_s:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
