"""Deterministic generator of the embedded demo dataset.

The demo set is a small synthetic scene-parsing dataset written in the
COCO-Stuff164k on-disk layout (``images/{train2017,val2017}/*.jpg`` and
``annotations/{train2017,val2017}/*_labelTrainIds.png``) with *real*
COCO-Stuff train ids, so mmseg's ``COCOStuffDataset`` loads it unchanged; the
demo configs restrict the class list with ``metainfo=dict(classes=...)`` and
mmseg's label map turns the 12 used train ids into 0..11.

What makes it useful for metric regularizers:

* 4 large "stuff" classes (sky, grass, sea, sand) cover most pixels;
* 8 "thing" classes are small and increasingly rare (a person appears in 60%
  of the images, a frisbee in 15%), and pairs of them share a colour and
  differ only in shape (stop sign vs. person, sports ball vs. frisbee), so a
  pixel-wise loss can reach a high pixel accuracy while missing rare classes;
* about 1% of the pixels are unlabelled (255 = ignore), as in COCO-Stuff.

Every image is drawn from ``numpy.random.default_rng((seed, split, index))``,
so the data are identical across machines and independent of generation order.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: Class names of the demo set, in the order of the demo configs' metainfo.
DEMO_CLASSES: Tuple[str, ...] = (
    'sky-other', 'grass', 'sea', 'sand', 'person', 'car', 'bird', 'kite',
    'stop sign', 'traffic light', 'sports ball', 'frisbee')

#: COCO-Stuff164k train ids (0-170) of :data:`DEMO_CLASSES`.
DEMO_TRAIN_IDS: Dict[str, int] = {
    'sky-other': 145, 'grass': 112, 'sea': 143, 'sand': 142, 'person': 0,
    'car': 2, 'bird': 14, 'kite': 33, 'stop sign': 11, 'traffic light': 9,
    'sports ball': 32, 'frisbee': 29}

IGNORE_INDEX = 255
#: Bump when the drawing code changes, so old folders are regenerated.
GENERATOR_VERSION = 2
SPLIT_DIRS = {'train': 'train2017', 'val': 'val2017'}


@dataclass(frozen=True)
class _Thing:
    """How one thing class is drawn: occurrence, shape, size and colour."""
    name: str
    prob: float  # probability that an image contains it (>= 1 instance)
    shape: str  # 'ellipse' | 'rect' | 'triangle' | 'diamond' | 'octagon'
    size: Tuple[int, int]  # min / max extent in pixels
    aspect: float  # height / width
    color: Tuple[int, int, int]  # RGB
    in_sky: bool = False


_STUFF_COLORS = {  # RGB means; textures are added on top
    'sky-other': (120, 170, 225),
    'grass': (70, 140, 60),
    'sea': (40, 90, 150),
    'sand': (200, 180, 120),
}

_THINGS: Tuple[_Thing, ...] = (
    _Thing('person', 0.60, 'ellipse', (12, 26), 2.2, (170, 60, 60)),
    _Thing('car', 0.50, 'rect', (14, 30), 0.5, (60, 60, 190)),
    _Thing('bird', 0.40, 'triangle', (6, 12), 0.7, (60, 60, 60), True),
    _Thing('kite', 0.30, 'diamond', (8, 16), 1.3, (240, 140, 30), True),
    # same colour family as person, different shape and size
    _Thing('stop sign', 0.25, 'octagon', (6, 12), 1.0, (185, 50, 55)),
    _Thing('traffic light', 0.20, 'rect', (8, 14), 2.6, (150, 200, 40)),
    # sports ball and frisbee share a colour; ball is round, frisbee flat
    _Thing('sports ball', 0.20, 'ellipse', (5, 9), 1.0, (235, 235, 225)),
    _Thing('frisbee', 0.15, 'ellipse', (7, 13), 0.45, (230, 230, 215)),
)


def _shape_mask(shape: str, h: int, w: int, cy: float, cx: float, ry: float,
                rx: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape centred at (cy, cx) with radii (ry, rx)."""
    dy, dx = (yy - cy) / max(ry, 0.5), (xx - cx) / max(rx, 0.5)
    if shape == 'ellipse':
        return dy**2 + dx**2 <= 1.0
    if shape == 'rect':
        return (np.abs(dy) <= 1.0) & (np.abs(dx) <= 1.0)
    if shape == 'diamond':
        return np.abs(dy) + np.abs(dx) <= 1.0
    if shape == 'octagon':
        return ((np.abs(dy) <= 1.0) & (np.abs(dx) <= 1.0)
                & (np.abs(dy) + np.abs(dx) <= 1.45))
    if shape == 'triangle':  # apex up
        return (dy <= 1.0) & (dy >= -1.0) & (np.abs(dx) <= (dy + 1.0) / 2.0)
    raise ValueError(f'unknown shape {shape!r}')


def render_sample(rng: np.random.Generator,
                  size: Tuple[int, int] = (128, 128)
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one image and its label map.

    Args:
        rng: The random generator that fixes this sample.
        size: (height, width) of the image.

    Returns:
        ``(image, label)``: ``image`` uint8 RGB of shape (H, W, 3); ``label``
        uint8 of shape (H, W) holding COCO-Stuff train ids and 255 (ignore).
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    label = np.empty((h, w), np.uint8)
    # Stuff layout: sky above a wavy horizon, one or two ground classes below
    # split by a wavy, slanted boundary.
    horizon = rng.uniform(0.25, 0.55) * h
    phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(1, 6)
    wave = horizon + amp * np.sin(xx / w * 2 * np.pi * rng.uniform(0.5, 2)
                                  + phase)
    sky = yy < wave
    ground = rng.choice(['grass', 'sea', 'sand'], size=2, replace=False)
    split = rng.uniform(0.2, 0.8) * w + (yy - horizon) * rng.uniform(-1, 1)
    split = split + 4 * np.sin(yy / 7.0 + phase)
    use_two = rng.random() < 0.6
    second = (xx > split) if use_two else np.zeros_like(sky)
    names = np.where(sky, 'sky-other', np.where(second, ground[1], ground[0]))
    image = np.zeros((h, w, 3), np.float32)
    for name, rgb in _STUFF_COLORS.items():
        m = names == name
        if not m.any():
            continue
        label[m] = DEMO_TRAIN_IDS[name]
        jitter = rng.normal(0, 12, size=3)
        image[m] = np.asarray(rgb, np.float32) + jitter
    # low-frequency shading and a fine texture over everything
    shade = cv2.resize(rng.normal(0, 10, (4, 4)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    image += shade[..., None]
    # Things, drawn back to front.
    for thing in _THINGS:
        if rng.random() >= thing.prob:
            continue
        for _ in range(1 + int(rng.random() < 0.3)):
            extent = rng.uniform(*thing.size)  # the longer side
            if thing.aspect >= 1:
                ry = extent / 2.0
                rx = ry / thing.aspect
            else:
                rx = extent / 2.0
                ry = rx * thing.aspect
            if thing.in_sky:
                cy = rng.uniform(ry, max(ry + 1, horizon - ry))
            else:
                cy = rng.uniform(max(horizon, ry), h - ry)
            cx = rng.uniform(rx, w - rx)
            m = _shape_mask(thing.shape, h, w, cy, cx, ry, rx, yy, xx)
            if not m.any():
                continue
            label[m] = DEMO_TRAIN_IDS[thing.name]
            image[m] = np.asarray(thing.color, np.float32) + rng.normal(
                0, 10, size=3)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    # Unlabelled pixels (as in COCO-Stuff): a few small blobs.
    for _ in range(rng.integers(0, 4)):
        r = rng.uniform(2, 5)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        label[(yy - cy)**2 + (xx - cx)**2 <= r * r] = IGNORE_INDEX
    image = np.clip(image * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
    return image, label


def _sample_rng(seed: int, split: str, index: int,
                kind: str = 'scenes') -> np.random.Generator:
    # 'scenes' keeps the original key so its files never change
    key = [seed, list(SPLIT_DIRS).index(split), index]
    if kind != 'scenes':
        key.append(sorted(DEMO_KINDS).index(kind) + 1)
    return np.random.default_rng(key)


def sample_name(split: str, index: int) -> str:
    """File stem of a sample, COCO style (12 digits, val ids offset)."""
    offset = 0 if split == 'train' else 500000
    return f'{offset + index:012d}'


def generate_demo_dataset(out_dir: str,
                          num_train: int = 300,
                          num_val: int = 100,
                          seed: int = 0,
                          size: Optional[Tuple[int, int]] = None,
                          overwrite: bool = False,
                          progress: bool = True,
                          kind: str = 'scenes') -> Dict[str, object]:
    """Write a demo dataset to ``out_dir`` in the COCO-Stuff164k layout.

    Existing files are kept unless ``overwrite``; a ``meta.json`` records the
    generation arguments, and a folder made with other arguments is rewritten.

    Args:
        out_dir: Root folder (``data/demo`` by default in the configs).
        num_train: Number of training images.
        num_val: Number of validation images.
        seed: Seed of the whole set.
        size: (height, width) of each image (default: the kind's own).
        overwrite: Rewrite every file even when present.
        progress: Show an mmengine progress bar.
        kind: Which synthetic set, a key of :data:`DEMO_KINDS`: ``'scenes'``
            (the default demo) or ``'aerial'`` (the second, differently made
            set of :mod:`segreg.datasets.aerial_data`).

    Returns:
        The meta dictionary written to ``meta.json`` (arguments, classes and
        per-split pixel counts per class).
    """
    if kind not in DEMO_KINDS:
        raise ValueError(f'unknown demo kind {kind!r}; choose from '
                         f'{sorted(DEMO_KINDS)}')
    spec = DEMO_KINDS[kind]
    size = tuple(size or spec.size)  # type: ignore[assignment]
    args = dict(num_train=num_train, num_val=num_val, seed=seed,
                size=list(size), version=GENERATOR_VERSION)
    if kind != 'scenes':
        args['kind'] = kind
    meta_path = osp.join(out_dir, 'meta.json')
    if osp.isfile(meta_path) and not overwrite:
        with open(meta_path) as f:
            old = json.load(f)
        if old.get('args') == args:
            return old
        overwrite = True  # different arguments: rewrite everything
    counts: Dict[str, List[int]] = {}
    id_to_col = {tid: i for i, tid in enumerate(
        spec.train_ids[c] for c in spec.classes)}
    jobs = [('train', i) for i in range(num_train)] + [
        ('val', i) for i in range(num_val)]
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(jobs))
    for split, idx in jobs:
        img_dir = osp.join(out_dir, 'images', SPLIT_DIRS[split])
        ann_dir = osp.join(out_dir, 'annotations', SPLIT_DIRS[split])
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        image, label = spec.render(_sample_rng(seed, split, idx, kind), size)
        stem = sample_name(split, idx)
        _atomic_imwrite(osp.join(img_dir, stem + '.jpg'),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        _atomic_imwrite(osp.join(ann_dir, stem + '_labelTrainIds.png'), label)
        hist = np.bincount(label.ravel(), minlength=256)
        split_counts = counts.setdefault(split, [0] * len(spec.classes))
        for tid, col in id_to_col.items():
            split_counts[col] += int(hist[tid])
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    meta = dict(args=args, kind=kind, classes=list(spec.classes),
                train_ids=[spec.train_ids[c] for c in spec.classes],
                pixel_counts=counts)
    with open(meta_path + '.tmp', 'w') as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + '.tmp', meta_path)
    return meta


def _atomic_imwrite(path: str, array: np.ndarray,
                    params: Optional[Sequence[int]] = None) -> None:
    """Write an image to a temporary name, then rename (no half files)."""
    ext = osp.splitext(path)[1]
    ok, buf = cv2.imencode(ext, array, list(params or []))
    if not ok:
        raise RuntimeError(f'could not encode {path}')
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)


def class_frequencies(meta: Dict[str, object],
                      split: str = 'train') -> Dict[str, float]:
    """Pixel fraction of every demo class in ``split`` (from ``meta.json``)."""
    counts = np.asarray(meta['pixel_counts'][split], np.float64)  # type: ignore[index]
    total = counts.sum()
    return {c: float(n / total)
            for c, n in zip(meta['classes'], counts)}  # type: ignore[arg-type]



@dataclass(frozen=True)
class DemoSpec:
    """A synthetic dataset: its classes, their train ids and its renderer."""
    classes: Tuple[str, ...]
    train_ids: Dict[str, int]
    render: Callable[[np.random.Generator, Tuple[int, int]],
                     Tuple[np.ndarray, np.ndarray]]
    size: Tuple[int, int]


def _kinds() -> Dict[str, DemoSpec]:
    from . import aerial_data, collage_data
    return {
        'scenes': DemoSpec(DEMO_CLASSES, DEMO_TRAIN_IDS, render_sample,
                           (128, 128)),
        'aerial': DemoSpec(aerial_data.AERIAL_CLASSES,
                           aerial_data.AERIAL_TRAIN_IDS,
                           aerial_data.render_aerial, (96, 96)),
        'collage': DemoSpec(collage_data.COLLAGE_CLASSES,
                            collage_data.COLLAGE_TRAIN_IDS,
                            collage_data.render_collage, (96, 96)),
    }


#: The synthetic sets by name (``tools/make_demo_data.py --kind``).
DEMO_KINDS: Dict[str, DemoSpec] = {}
DEMO_KINDS.update(_kinds())
