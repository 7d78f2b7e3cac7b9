"""Map a function over tasks with mmengine's progress bar (serial or pool)."""
from __future__ import annotations

from typing import Callable, List, Sequence


def progress_map(func: Callable, tasks: Sequence, nproc: int = 1) -> List:
    """``[func(t) for t in tasks]`` with a progress bar, in ``nproc`` processes.

    A thin wrapper of mmengine's ``track_progress`` /
    ``track_parallel_progress`` that picks a chunk size (up to 32 tasks, at
    least 8 chunks per process) and accepts an empty task list. Results keep
    the order of ``tasks``.
    """
    from mmengine.utils import track_parallel_progress, track_progress
    tasks = list(tasks)
    if not tasks:
        return []
    if nproc <= 1:
        return track_progress(func, tasks)
    chunk = max(1, min(32, len(tasks) // (nproc * 8)))
    return track_parallel_progress(func, tasks, nproc, chunksize=chunk)
