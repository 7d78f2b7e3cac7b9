"""Per-sample seeded augmentation: a function of (seed, position, index)."""
from __future__ import annotations

import itertools
import pickle
import random

import numpy as np
import torch

from segreg.datasets import GuardedDataset, SampleKey, SeededInfiniteSampler
from segreg.utils.rng import derive_seed, forked_cpu_rngs


class _Random:
    """A dataset whose items are draws from the three global generators."""

    def __len__(self):
        return 5

    def __getitem__(self, idx):
        return (int(idx), random.random(), float(np.random.rand()),
                float(torch.rand(())))


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_keeps_mmengine_order_and_adds_distinct_seeds():
    from mmengine.dataset import InfiniteSampler
    ref = InfiniteSampler(range(5), shuffle=True, seed=3)
    ours = SeededInfiniteSampler(range(5), shuffle=True, seed=3)
    keys = _take(ours, 15)
    assert [int(k) for k in keys] == _take(ref, 15)
    assert all(isinstance(k, SampleKey) for k in keys)
    assert len({k.seed for k in keys}) == 15
    assert keys[7].seed == derive_seed(3, 7, int(keys[7]))


def test_skip_resumes_the_same_keys():
    full = _take(SeededInfiniteSampler(range(5), seed=1), 12)
    resumed = SeededInfiniteSampler(range(5), seed=1)
    resumed.skip(7)
    assert [(int(k), k.seed) for k in _take(resumed, 5)] == \
        [(int(k), k.seed) for k in full[7:]]


def test_ranks_share_one_stream_of_positions():
    one = _take(SeededInfiniteSampler(range(5), seed=2), 10)
    shards = []
    for rank in (0, 1):
        s = SeededInfiniteSampler(range(5), seed=2)
        s.rank, s.world_size = rank, 2
        s.indices = s._indices_of_rank()
        shards.append(_take(s, 5))
    merged = [k for pair in zip(*shards) for k in pair]
    assert [(int(k), k.seed) for k in merged] == \
        [(int(k), k.seed) for k in one]


def test_key_survives_pickling_to_a_worker():
    key = SampleKey(4, 1234)
    back = pickle.loads(pickle.dumps(key))
    assert isinstance(back, SampleKey) and int(back) == 4
    assert back.seed == 1234


def test_draws_depend_on_the_key_only_and_leave_caller_streams_alone():
    ds = GuardedDataset(_Random())
    key = SampleKey(2, 99)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    before = (random.getstate(), np.random.get_state()[1].copy(),
              torch.get_rng_state().clone())
    first = ds[key]
    after = (random.getstate(), np.random.get_state()[1],
             torch.get_rng_state())
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert torch.equal(before[2], after[2])
    np.random.rand(17)  # another caller state: same sample
    torch.rand(5)
    assert ds[key] == first
    assert ds[SampleKey(2, 100)] != first
    with forked_cpu_rngs(99):
        assert (2, random.random(), float(np.random.rand()),
                float(torch.rand(()))) == first
