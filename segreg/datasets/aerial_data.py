"""The second synthetic dataset, made differently from the demo scenes.

Where the demo scenes (:mod:`segreg.datasets.demo_data`) are colour-coded
objects on a horizon layout, the *aerial* set is a top-down land-cover map:

* the background is a Voronoi partition into 4 land-cover classes (grass,
  dirt, tree, playingfield) told apart by *texture* (frequency and contrast of
  the noise) more than by colour;
* thin structures (roads 3-5 px wide, one meandering river) are classes whose
  IoU punishes every boundary pixel;
* tiny and rare objects sit on their context: cars on roads, boats on the
  river, roofs in fields, and tents (rare) that share the roofs' colour.

It is used by the regularizer experiments (docs/experiments.md) as a check
that a result on the demo is not a property of one generator. Same on-disk
layout and COCO-Stuff train ids as the demo, 96x96 images.
"""
from __future__ import annotations

from typing import Dict, Tuple

import cv2
import numpy as np

from .demo_data import IGNORE_INDEX, _shape_mask

AERIAL_CLASSES: Tuple[str, ...] = (
    'grass', 'dirt', 'tree', 'playingfield', 'road', 'river', 'roof', 'car',
    'boat', 'tent')

AERIAL_TRAIN_IDS: Dict[str, int] = {
    'grass': 112, 'dirt': 99, 'tree': 157, 'playingfield': 133, 'road': 137,
    'river': 136, 'roof': 139, 'car': 2, 'boat': 8, 'tent': 154}

# (mean RGB, noise std, noise cell size in px): texture carries the class
_COVER = {
    'grass': ((95, 140, 70), 10, 8),
    'dirt': ((130, 115, 85), 14, 3),
    'tree': ((60, 100, 55), 28, 2),
    'playingfield': ((105, 150, 80), 6, 24),
}


def _texture(rng: np.random.Generator, h: int, w: int, std: float,
             cell: int) -> np.ndarray:
    small = rng.normal(0, std, (max(1, h // cell), max(1, w // cell), 3))
    return cv2.resize(small.astype(np.float32), (w, h),
                      interpolation=cv2.INTER_NEAREST if cell <= 3 else
                      cv2.INTER_LINEAR)


def render_aerial(rng: np.random.Generator,
                  size: Tuple[int, int] = (96, 96)
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one aerial tile and its label map (COCO-Stuff train ids, 255).

    Args:
        rng: The random generator that fixes this sample.
        size: (height, width).

    Returns:
        ``(image, label)``: uint8 RGB (H, W, 3) and uint8 (H, W).
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Voronoi land cover
    n_cells = int(rng.integers(3, 7))
    seeds = rng.uniform(0, 1, (n_cells, 2)) * (h, w)
    dist = (yy[None] - seeds[:, 0, None, None])**2 + (
        xx[None] - seeds[:, 1, None, None])**2
    cell = dist.argmin(0)
    cover_names = list(_COVER)
    cover = rng.integers(0, len(cover_names), n_cells)
    label = np.empty((h, w), np.uint8)
    image = np.zeros((h, w, 3), np.float32)
    for k in range(n_cells):
        m = cell == k
        name = cover_names[cover[k]]
        rgb, std, tsize = _COVER[name]
        label[m] = AERIAL_TRAIN_IDS[name]
        tex = _texture(rng, h, w, std, tsize)
        image[m] = np.asarray(rgb, np.float32) + rng.normal(0, 6, 3) + tex[m]
    # river: one meandering band
    road_mask = np.zeros((h, w), bool)
    river_mask = np.zeros((h, w), bool)
    if rng.random() < 0.6:
        x0, amp, freq = rng.uniform(0.2, 0.8) * w, rng.uniform(4, 15), \
            rng.uniform(0.5, 2.0)
        centre = x0 + amp * np.sin(yy / h * 2 * np.pi * freq + rng.uniform(
            0, 6.3))
        river_mask = np.abs(xx - centre) <= rng.uniform(2.0, 3.5)
        if rng.random() < 0.5:
            river_mask = river_mask.T.copy() if h == w else river_mask
    # roads: 1-2 straight lines at random angles
    for _ in range(int(rng.integers(0, 3))):
        theta = rng.uniform(0, np.pi)
        c = rng.uniform(0.2, 0.8) * np.array([h, w])
        d = np.abs((yy - c[0]) * np.cos(theta) - (xx - c[1]) * np.sin(theta))
        road_mask |= d <= rng.uniform(1.5, 2.5)
    label[river_mask] = AERIAL_TRAIN_IDS['river']
    image[river_mask] = np.asarray((60, 95, 140), np.float32) + _texture(
        rng, h, w, 6, 6)[river_mask]
    label[road_mask] = AERIAL_TRAIN_IDS['road']
    image[road_mask] = np.asarray((120, 120, 125), np.float32) + rng.normal(
        0, 5, (int(road_mask.sum()), 3))
    # small objects on their context
    def place(name: str, where: np.ndarray, count: int, extent: Tuple[float,
              float], aspect: float, shape: str, rgb) -> None:
        ys, xs = np.nonzero(where)
        if len(ys) == 0:
            return
        for _ in range(count):
            i = rng.integers(0, len(ys))
            ry = rng.uniform(*extent) / 2
            rx = ry / aspect
            if rng.random() < 0.5:
                rx, ry = ry, rx
            m = _shape_mask(shape, h, w, ys[i], xs[i], ry, rx, yy, xx)
            label[m] = AERIAL_TRAIN_IDS[name]
            image[m] = np.asarray(rgb, np.float32) + rng.normal(0, 8, 3)

    fields = ~(road_mask | river_mask)
    if rng.random() < 0.5:
        place('roof', fields, int(rng.integers(1, 4)), (5, 10), 1.4, 'rect',
              (170, 80, 70))
    if road_mask.any() and rng.random() < 0.6:
        place('car', road_mask, int(rng.integers(1, 4)), (3, 5), 2.0, 'rect',
              (220, 220, 60))
    if river_mask.any() and rng.random() < 0.4:
        place('boat', river_mask, int(rng.integers(1, 3)), (3, 6), 2.0,
              'ellipse', (235, 235, 235))
    if rng.random() < 0.12:  # rare; the colour of roofs, a different shape
        place('tent', fields, 1, (5, 8), 1.0, 'triangle', (175, 85, 72))
    image += rng.normal(0, 5, image.shape).astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):  # unlabelled blobs
        r = rng.uniform(2, 4)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        label[(yy - cy)**2 + (xx - cx)**2 <= r * r] = IGNORE_INDEX
    image = np.clip(image * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8)
    return image, label
