"""Distributed runs on machines without CUDA (tests, debugging on CPU).

mmengine's pytorch launcher always calls ``torch.cuda.set_device`` and its
default DDP wrapper pins ``device_ids=[LOCAL_RANK]``, which DDP refuses for
CPU modules; nccl needs GPUs. The tools call these two functions so that
``torchrun`` with gloo works on CPU; on GPU hosts both do nothing.
"""
from __future__ import annotations

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
