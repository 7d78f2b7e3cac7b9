"""Counter-based seeding: random streams that are functions of a position.

An exact resume needs every random draw of a run to be a function of where
the run is, not of how it got there. segreg therefore never lets a random
stream run across iterations:

* the augmentation of a sample is drawn from the global generators
  re-seeded with ``derive_seed(run seed, stream position, sample index)``
  (:class:`segreg.datasets.SeededInfiniteSampler`,
  :class:`segreg.datasets.GuardedDataset`), in whichever process loads it;
* the training step (dropout, pixel subsampling of the losses) is drawn from
  the global generators re-seeded with ``derive_seed(run seed, iteration)``
  before every iteration (:class:`segreg.engine.hooks.IterSeedHook`).

See docs/reliability.md.
"""
from __future__ import annotations

import contextlib
import random
from typing import Iterator, Optional

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (numpy's SeedSequence hash).

    Distinct keys give statistically independent seeds; the same keys give
    the same seed on every machine and process.

    Args:
        *keys: Non-negative or negative Python ints (taken modulo 2**64).

    Returns:
        int: A seed in [0, 2**32).
    """
    words = [int(k) % (1 << 64) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def seed_global_rngs(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global and torch's generators.

    ``torch.manual_seed`` also seeds every CUDA device's generator.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def forked_cpu_rngs(seed: Optional[int]) -> Iterator[None]:
    """Run a block with the CPU global generators seeded by ``seed``.

    The states of Python's ``random``, NumPy's global generator and torch's
    CPU generator are saved before and restored after, so the block neither
    sees nor changes the caller's streams. ``seed=None``: a no-op.
    CUDA generators are not touched (data pipelines run on the CPU).
    """
    if seed is None:
        yield
        return
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
