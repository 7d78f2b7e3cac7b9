"""An InfiniteSampler whose indices carry the seed of their augmentation.

mmengine's ``InfiniteSampler`` yields a deterministic stream of dataset
indices (permutations seeded by the run seed) and, on ``--resume``, skips
the part already trained (``IterBasedTrainLoop`` calls ``skip``). The
random crops, flips and colour jitter of those samples, however, come from
the process-global NumPy stream of whichever process loads them, which
restarts on resume and depends on the number of workers.
``SeededInfiniteSampler`` yields :class:`SampleKey` instead: an ``int``
(the dataset index, so any dataset accepts it) that also carries
``seed = derive_seed(run seed, position in the global stream, index)``.
:class:`segreg.datasets.GuardedDataset` (put around every dataset by
``SegregRunner``) runs the pipeline of that sample with the global
generators seeded by it, so every sample's augmentation is a function of
its position in the stream: the same after a resume, with any
``num_workers``, and on every rank of a torchrun job (the position counts
samples over all ranks).
"""
from __future__ import annotations

import itertools
from typing import Iterator

from mmengine.dataset import InfiniteSampler
from mmseg.registry import DATA_SAMPLERS

from segreg.utils.rng import derive_seed


class SampleKey(int):
    """A dataset index with the seed of this draw's augmentation."""

    seed: int

    def __new__(cls, index: int, seed: int) -> 'SampleKey':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):
        return (SampleKey, (int(self), self.seed))

    def __repr__(self) -> str:
        return f'SampleKey({int(self)}, seed={self.seed})'


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(InfiniteSampler):
    """``InfiniteSampler`` yielding :class:`SampleKey` (index + seed).

    Same order, sharding over ranks and ``skip`` as mmengine's
    ``InfiniteSampler``; the run seed (``randomness.seed``) is passed in by
    the runner as ``seed``.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Shuffle the dataset. Default True.
        seed (int, optional): Run seed; None: a random seed shared by ranks.
    """

    def _indices_of_rank(self) -> Iterator[int]:
        stream = enumerate(self._infinite_indices())
        for pos, index in itertools.islice(stream, self.rank, None,
                                           self.world_size):
            yield SampleKey(index, derive_seed(self.seed, pos, index))
