"""Distributed runs on machines without CUDA (tests, debugging on CPU).

mmengine's pytorch launcher always calls ``torch.cuda.set_device`` and its
default DDP wrapper pins ``device_ids=[LOCAL_RANK]``, which DDP refuses for
CPU modules; nccl needs GPUs. The tools call these two functions so that
``torchrun`` with gloo works on CPU; on GPU hosts both do nothing.
"""
from __future__ import annotations

from typing import Optional

from mmengine.config import Config


def adapt_cfg_for_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Use gloo and a DDP wrapper without ``device_ids`` when CUDA is absent.

    Args:
        cfg: The config, changed in place.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    import torch
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.env_cfg = dict(cfg.get('env_cfg', {}), dist_cfg=dict(backend='gloo'))
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def init_cpu_process_group(launcher: str) -> None:
    """Start a gloo process group from torchrun's environment on CPU hosts.

    mmengine skips its own initialisation when a process group exists.
    """
    import torch
    import torch.distributed as dist
    if (launcher != 'pytorch' or torch.cuda.is_available()
            or dist.is_initialized()):
        return
    dist.init_process_group(backend='gloo')


# ---------------------------------------------------------------------------
# differentiable collectives of the losses (pixel regularizers, SMeasureLoss)
# ---------------------------------------------------------------------------
def world_size() -> int:
    """``torch.distributed`` world size, 1 when no process group is up."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_sum(x):
    """Sum ``x`` over ranks, differentiably (the backward sums gradients).

    A loss computed from all-reduced sums is the same on every rank; DDP
    then averages the parameter gradients, which equals one process on the
    global batch. Identity when not distributed.
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(x)


def all_reduce_sum_(x):
    """Sum ``x`` over ranks in place, without autograd (iterations whose
    result needs no gradient, e.g. the Newton steps of
    ``segreg.ops.newton_threshold``); returns ``x``. Identity when not
    distributed."""
    if world_size() == 1:
        return x
    import torch.distributed as dist
    dist.all_reduce(x)
    return x


def all_gather_varlen(x, *extra, pad_value=0):
    """Concatenate variable-length tensors of every rank along dim 0.

    ``x`` is gathered differentiably; ``extra`` tensors (labels, weights)
    without gradient. Each rank pads to the longest length with
    ``pad_value`` (``extra``: a tuple of pad values, one per tensor, or one
    for all) and the padding rows are removed again, so the result holds
    exactly the rows of every rank, in rank order. Identity when not
    distributed.

    Returns:
        tuple: ``(x_all, *extra_all)``.
    """
    import torch
    import torch.distributed as dist
    if world_size() == 1:
        return (x, *extra)
    from torch.distributed.nn.functional import all_gather
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    m = max(1, max(sizes))

    def pad(t, value):
        if t.shape[0] == m:
            return t.contiguous()
        fill = t.new_full((m - t.shape[0], *t.shape[1:]), value)
        return torch.cat([t, fill]).contiguous()

    pads = pad_value if isinstance(pad_value, tuple) else \
        (pad_value, ) * (len(extra) + 1)
    keep = torch.cat([torch.arange(s, device=x.device) + r * m
                      for r, s in enumerate(sizes)])
    out = [torch.cat(all_gather(pad(x, pads[0]))).index_select(0, keep)]
    for t, v in zip(extra, pads[1:] if len(pads) > 1 else pads):
        parts = [torch.empty_like(pad(t, v)) for _ in range(world)]
        dist.all_gather(parts, pad(t, v))
        out.append(torch.cat(parts).index_select(0, keep))
    return tuple(out)


def teardown_process_group(barrier: bool = True) -> None:
    """Wait for every rank (``barrier``), then destroy the process group.

    Without this the interpreter exits with the group alive: its
    communication threads are still running when the C++ objects are
    destroyed, and a rank may die with "terminate called without an active
    exception" (exit status 1) after training had finished. The tools call
    it once their work is done; a no-op without a process group. On an error
    path pass ``barrier=False``: the other ranks may never reach the barrier.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if barrier:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def exit_process(status: Optional[int]) -> None:
    """End a tool's process with ``status``, skipping C++ static teardown.

    Written by hand on purpose: after :func:`teardown_process_group`, a gloo
    rank could still (1 of 10 runs in one CI run on a busy machine) die at
    interpreter shutdown with "terminate called without an active exception"
    (SIGABRT, torchrun exit 1) after its work had finished: a c10d / gloo
    background thread destroyed while joinable. The tools' work is done and
    written by then (mmengine's ``LoggerHook.after_run`` closes the
    visualizer), so the streams and logging handlers are flushed and the
    process leaves with ``os._exit``, which runs no destructors. Used only
    under a launcher (``WORLD_SIZE`` set); a plain run exits normally.
    """
    import logging
    import os
    import sys
    status = 0 if status is None else int(status)
    if 'WORLD_SIZE' not in os.environ:
        sys.exit(status)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
