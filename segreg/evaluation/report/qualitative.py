"""The qualitative grid: which validation images to show, and their tiles.

The rule (stated in the report): per-image mIoU is the mean IoU over the
classes present in the image's ground truth or prediction (the report's
class rule on one image, from ``per_image.npz``). For each arm in turn, the
``per_direction`` images with the largest gain over the baseline, then the
``per_direction`` with the largest loss (an image already chosen is skipped,
a direction without such an image is empty), then ``random_count`` images
drawn with a fixed seed from the rest; at most ``max_images`` in all. The
runs compared are the ones whose predictions are shown (one seed per arm).
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..per_image import PerImageStats
from ..predictions import PredictionIndex

#: Longest side of a tile in the grid (pixels; labels nearest-neighbour).
TILE_SIZE = 160


def per_image_miou(stats: PerImageStats) -> np.ndarray:
    """``(N,)`` mean IoU of each image over its present classes (NaN: none).

    A class is present in an image when its ground truth or its prediction
    has a pixel of it (ignored pixels dropped), exactly the entries that
    ``per_image.npz`` stores.
    """
    union = stats.union.astype(np.float64)
    iou = np.divide(stats.intersect, union, out=np.zeros(len(union)),
                    where=union > 0)
    counts = np.diff(stats.ptr)
    sums = np.zeros(len(counts))
    nz = counts > 0
    if iou.size:
        sums[nz] = np.add.reduceat(iou, stats.ptr[:-1][nz])
    return np.divide(sums, counts, out=np.full(len(counts), np.nan),
                     where=nz)


@dataclass
class Choice:
    name: str
    reason: str


def choose_images(names: Sequence[str], base: np.ndarray,
                  arms: Dict[str, np.ndarray], per_direction: int = 2,
                  random_count: int = 2, max_images: int = 12,
                  seed: int = 0) -> List[Choice]:
    """Images of the grid by the module's rule.

    Args:
        names: Image names, the order of ``base`` and of each arm's array.
        base: ``(N,)`` per-image mIoU of the baseline run (percent or
            fraction, as the arms).
        arms: Arm name -> ``(N,)`` per-image mIoU of that arm's run.
        per_direction: Images per arm with the largest gain, and as many
            with the largest loss.
        random_count: Extra images drawn uniformly from the rest.
        max_images: Cap on the number of images.
        seed: Seed of the random draw.

    Returns:
        The chosen images in display order, each with the reason it is shown.
    """
    chosen: List[Choice] = []
    taken = set()

    def add(i: int, reason: str) -> bool:
        if len(chosen) >= max_images or i in taken:
            return False
        taken.add(i)
        chosen.append(Choice(names[i], reason))
        return True

    base = np.asarray(base, dtype=np.float64)
    for arm, vals in arms.items():
        d = np.asarray(vals, dtype=np.float64) - base
        ok = ~np.isnan(d)
        for sign, word in ((1, 'gain'), (-1, 'loss')):
            order = np.argsort(np.where(ok, -sign * d, np.inf),
                               kind='stable')
            n = 0
            for i in order:
                if n >= per_direction or not ok[i] or sign * d[i] <= 0:
                    break
                n += add(int(i), f'largest {word} of {arm} '
                         f'({d[i]:+.1f} mIoU)')
    rest = [i for i in range(len(names)) if i not in taken]
    rng = np.random.default_rng(seed)
    k = min(random_count, len(rest), max(0, max_images - len(chosen)))
    for i in sorted(rng.choice(rest, size=k, replace=False).tolist()
                    if k else []):
        add(int(i), 'random (fixed seed)')
    return chosen


def _fit(shape: Tuple[int, int], size: int) -> Tuple[int, int]:
    h, w = shape
    s = size / max(h, w)
    return max(1, int(round(w * s))), max(1, int(round(h * s)))


def save_tile(rgb: np.ndarray, path: str, label: bool,
              size: int = TILE_SIZE) -> str:
    """Resize an RGB array to ``size`` on its long side and save a PNG.

    Label maps (``label=True``) use nearest-neighbour so that no colour
    outside the palette appears; photos use a bicubic filter.
    """
    from PIL import Image
    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    im = im.resize(_fit(rgb.shape[:2], size),
                   Image.NEAREST if label else Image.BICUBIC)
    os.makedirs(osp.dirname(path), exist_ok=True)
    im.save(path, optimize=True)
    return path


@dataclass
class GridRow:
    name: str
    reason: str
    cells: List[Tuple[str, str]]          # (png, caption) per column
    legend: List[Tuple[str, Tuple[int, int, int]]]


def build_grid(choices: Sequence[Choice], base_name: str,
               base_idx: PredictionIndex,
               arm_idx: Dict[str, PredictionIndex],
               miou: Dict[str, Dict[str, float]], out_dir: str,
               notes: List[str]) -> List[GridRow]:
    """Tiles of the chosen images: image | ground truth | baseline | arms.

    ``miou[arm][image]`` is the per-image mIoU shown under each prediction.
    Missing files become grey tiles and a note.
    """
    rows = []
    grey = np.full((8, 8, 3), 200, np.uint8)
    for k, ch in enumerate(choices):
        stem = f'{k:02d}'
        gt = base_idx.gt(ch.name)
        img = base_idx.image(ch.name)
        shape = gt.shape if gt is not None else None
        cells = []
        if img is None:
            notes.append(f'grid: image file of {ch.name} not found '
                         f'({base_idx.images[ch.name].get("img_path")}); '
                         f'grey tile.')
        elif shape is not None and img.shape[:2] != shape:
            from PIL import Image
            img = np.asarray(Image.fromarray(img).resize(
                (shape[1], shape[0]), Image.BICUBIC))
        cells.append((save_tile(img if img is not None else grey,
                                osp.join(out_dir, f'{stem}_image.png'),
                                label=False), ch.name))
        if gt is None:
            notes.append(f'grid: no ground truth saved for {ch.name} in '
                         f'{base_idx.metrics_dir}; grey tile.')
        cells.append((save_tile(base_idx.colorize(gt) if gt is not None
                                else grey,
                                osp.join(out_dir, f'{stem}_gt.png'),
                                label=True), 'ground truth'))
        present = set() if gt is None else \
            set(np.unique(gt).tolist()) - {base_idx.ignore_index}
        for j, (arm, idx) in enumerate([(base_name, base_idx)] +
                                       list(arm_idx.items())):
            pred = idx.pred(ch.name) if ch.name in idx.images else None
            if pred is None:
                notes.append(f'grid: no prediction of {arm} for {ch.name}; '
                             f'grey tile.')
            else:
                present |= set(np.unique(pred).tolist())
            v = miou.get(arm, {}).get(ch.name, float('nan'))
            cells.append((save_tile(idx.colorize(pred) if pred is not None
                                    else grey,
                                    osp.join(out_dir, f'{stem}_pred{j}.png'),
                                    label=True),
                          f'{arm}: mIoU {v:.1f}'))
        legend = [(base_idx.classes[c], tuple(int(x) for x in
                                              base_idx.palette[c]))
                  for c in sorted(present) if 0 <= c < len(base_idx.classes)]
        rows.append(GridRow(ch.name, ch.reason, cells, legend))
    return rows


def grid_runs(stats, baseline: str, notes: List[str]):
    """The run of each arm whose predictions are shown, or None.

    The smallest seed that every arm has with saved predictions; without
    seeds, the first run with predictions of each arm.
    """
    with_preds = {n: [r for r in a.runs if r.preds is not None]
                  for n, a in stats.items()}
    missing = [n for n, rs in with_preds.items() if not rs]
    if baseline in missing or len(missing) == len(stats):
        notes.append('qualitative grid left out: no saved predictions for '
                     f'{baseline} (evaluate with `tools/test.py ... '
                     f'--save-preds`; tools/ablate.py does it for the first '
                     f'seed).')
        return None
    for n in missing:
        notes.append(f'[{n}] no saved predictions; not in the qualitative '
                     f'grid.')
    seeds = [set(r.seed for r in rs) for n, rs in with_preds.items() if rs]
    common = set.intersection(*seeds) - {None}
    pick: Dict[str, object] = {}
    for n, rs in with_preds.items():
        if not rs:
            continue
        if common:
            s = min(common)
            pick[n] = next(r for r in rs if r.seed == s)
        else:
            pick[n] = rs[0]
    return pick
