"""The dataset wrapper that ``SegregRunner`` puts around every dataset.

It does two things to each sample, in whichever process loads it:

1. **Seeded augmentation.** When the index is a
   :class:`~segreg.datasets.seeded_sampler.SampleKey`, the sample's pipeline
   runs with the CPU global generators (``random``, NumPy, torch) seeded by
   the key's seed and restored afterwards, so its random resize, crop, flip,
   photometric distortion and ``AlbuSeg`` draws are a function of (run
   seed, stream position, index): the same after ``--resume``, with any
   ``num_workers`` and on every rank.
2. **Bad data named at load time.** A :class:`LoadedSampleCheck` is inserted
   after ``LoadAnnotations`` in each leaf dataset's pipeline, and an
   exception while loading a sample is diagnosed from its files. A bad file
   raises :class:`BadSampleError`, one line naming it, the defect and the
   fix; an exception whose files are fine is re-raised unchanged (it is not
   a data problem). With ``skip_bad=True`` (config key
   ``skip_bad_samples=True``) the next index is loaded instead (same seed)
   and the skipped file is recorded in the data sample's metainfo
   (``segreg_skipped``), which ``BadSampleHook`` counts and logs.

Attributes other than ``__getitem__`` / ``__len__`` (``metainfo``,
``get_data_info``, ...) are those of the wrapped dataset.
"""
from __future__ import annotations

from typing import Any, List, Optional

from segreg.utils.rng import forked_cpu_rngs
from .sample_checks import (CHECK_HINT, BadSampleError, LoadedSampleCheck,
                            diagnose_file)

#: Metainfo key of the files skipped to produce a sample.
SKIPPED_KEY = 'segreg_skipped'


def _leaves(dataset) -> List[Any]:
    """The leaf datasets under mmengine's wrappers (Concat, Repeat, ...)."""
    if hasattr(dataset, 'datasets'):
        return [leaf for d in dataset.datasets for leaf in _leaves(d)]
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'pipeline'):
        return _leaves(dataset.dataset)
    return [dataset]


def _insert_check(leaf, hint: str) -> None:
    pipeline = getattr(leaf, 'pipeline', None)
    transforms = getattr(pipeline, 'transforms', None)
    if transforms is None or any(
            isinstance(t, LoadedSampleCheck) for t in transforms):
        return
    classes = (getattr(leaf, 'metainfo', None) or {}).get('classes') or ()
    check = LoadedSampleCheck(
        num_classes=len(classes), ignore_index=getattr(leaf, 'ignore_index',
                                                       255), hint=hint)
    names = [type(t).__name__ for t in transforms]
    if 'LoadAnnotations' in names:
        transforms.insert(names.index('LoadAnnotations') + 1, check)
    elif not classes:
        return
    else:  # images only: still checks truncation
        check.num_classes = 1 << 30
        transforms.append(check)


class GuardedDataset:
    """Seed each sample's augmentation and name bad files (see module doc).

    Args:
        dataset: The built dataset (an mmengine ``BaseDataset`` or wrapper).
        skip_bad (bool): Skip bad samples instead of raising. Default False.
        config (str): Config file named in the messages' fix.
        max_skips (int): Consecutive bad samples before giving up.
        offer_skip (bool): Mention ``skip_bad_samples=True`` in the fix (the
            runner: for the training set only). Default True.
    """

    def __init__(self, dataset, skip_bad: bool = False,
                 config: Optional[str] = None, max_skips: int = 16,
                 offer_skip: bool = True) -> None:
        self.dataset = dataset
        self.skip_bad = bool(skip_bad)
        self.max_skips = int(max_skips)
        self.hint = CHECK_HINT.format(config=config or 'CONFIG')
        if offer_skip and not self.skip_bad:
            self.hint += ', or set skip_bad_samples=True in the config'
        for leaf in _leaves(dataset):
            _insert_check(leaf, self.hint)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == 'dataset':  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __deepcopy__(self, memo) -> 'GuardedDataset':
        # mmengine deep-copies dataloader configs; share the built dataset.
        return self

    def _diagnose(self, index: int) -> Optional[str]:
        try:
            info = self.dataset.get_data_info(index)
        except Exception:  # pragma: no cover - not a file problem
            return None
        for key, what in (('img_path', 'image'), ('seg_map_path', 'label')):
            problem = diagnose_file(info.get(key), what)
            if problem is not None:
                return f'bad sample {problem}; {self.hint}'
        return None

    def __getitem__(self, key):
        index = int(key)
        seed = getattr(key, 'seed', None)
        skipped: List[str] = []
        for _ in range(self.max_skips + 1):
            try:
                with forked_cpu_rngs(seed):
                    data = self.dataset[index]
            except BadSampleError as exc:
                problem = exc.line
            except Exception:
                problem = self._diagnose(index)
                if problem is None:
                    raise
            else:
                if skipped:
                    _mark_skipped(data, skipped)
                return data
            if not self.skip_bad:
                raise BadSampleError(problem)
            skipped.append(problem)
            index = (index + 1) % len(self.dataset)
        raise BadSampleError(
            f'{len(skipped)} consecutive bad samples (last: {skipped[-1]})')


def _mark_skipped(data, skipped: List[str]) -> None:
    samples = data.get('data_samples') if isinstance(data, dict) else None
    if samples is not None and hasattr(samples, 'set_metainfo'):
        samples.set_metainfo({SKIPPED_KEY: tuple(skipped)})
