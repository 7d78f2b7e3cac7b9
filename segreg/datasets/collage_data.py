"""The realistic in-house benchmark: real photographic content, collaged.

The demo scenes and the aerial set are drawn from flat colours and noise, so
their features are nearly free and a loss that raises rare-class recall wins
by construction. The *collage* set is built from **real photographs** that
ship inside the pinned ``scikit-image`` wheel (``skimage/data``, no download):

* the background is a layout of real textures and photo crops, told apart by
  their natural structure, not by a colour code: a band of the Hubble eXtreme
  Deep Field as sky above a wavy horizon, and a Voronoi partition of brick,
  grass, gravel (grey-level CC0 texture photographs) and the wood grain of a
  café table;
* the things are **real object cut-outs** pasted at random scale, flip and
  position: a person (the face of the astronaut portrait), a cat (Chelsea's
  face), a cup (the coffee cup on its saucer), coins (each of the Pompeii
  coins, cut out along its own outline), a scanned printed page, a flag, and
  a horse (the real silhouette of a horse clip-art, filled with cat fur, so
  that horse and cat share their texture and differ by shape);
* the things are increasingly rare (a person in 45% of the images, a horse
  in 10%): the 7 thing classes hold 0.2-2.1% of the train pixels each, 4 of
  them under 1% (seed 0: person 2.08, cup 1.26, paper 0.88, cat 0.84, metal
  0.71, horse 0.28, banner 0.22), the 5 textures 12-23% each;
* a few small blobs per image are unlabelled (255 = ignore, 0.3% of the
  pixels), as in COCO-Stuff.

Each class is a COCO-Stuff class name (and train id), so mmseg's
``COCOStuffDataset`` reads the folder with a ``metainfo`` class list, as for
the other demo sets. :data:`COLLAGE_SOURCES` lists every asset file with its
origin, licence and SHA-256; the generator refuses files whose hash differs
(another scikit-image version), so the set is identical on every machine.
It is a benchmark *recipe*: objects of one photograph each, reused at many
scales, are easier than COCO's intra-class variety; what it adds over the
synthetic sets is real texture and real shapes.
"""
from __future__ import annotations

import functools
import hashlib
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from .demo_data import IGNORE_INDEX

#: Class names, in the order of configs/_base_/datasets/collage.py.
COLLAGE_CLASSES: Tuple[str, ...] = (
    'sky-other', 'wall-brick', 'grass', 'gravel', 'wood', 'person', 'cat',
    'cup', 'metal', 'paper', 'banner', 'horse')

#: COCO-Stuff164k train ids (index in ``COCO_STUFF_CLASSES``).
COLLAGE_TRAIN_IDS: Dict[str, int] = {
    'sky-other': 145, 'wall-brick': 159, 'grass': 112, 'gravel': 113,
    'wood': 170, 'person': 0, 'cat': 15, 'cup': 41, 'metal': 120,
    'paper': 127, 'banner': 80, 'horse': 17}


@dataclass(frozen=True)
class AssetSource:
    """One photograph used by the collage set and where it comes from."""
    file: str  # name inside skimage/data
    sha256: str
    classes: Tuple[str, ...]  # the collage classes drawn from it
    what: str  # the part of the photo that is used
    origin: str  # the original source, as scikit-image documents it
    licence: str


#: Every asset: file in the scikit-image 0.26.0 wheel, hash, origin, licence
#: (from the docstrings of ``skimage.data``). Kept in docs/data.md.
COLLAGE_SOURCES: Tuple[AssetSource, ...] = (
    AssetSource(
        'hubble_deep_field.jpg',
        '3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4',
        ('sky-other',), 'random crops',
        'NASA, Hubble eXtreme Deep Field, hubblesite.org news release '
        '2012-37', 'public domain (NASA media guidelines)'),
    AssetSource(
        'brick.png',
        '7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf',
        ('wall-brick',), 'random crops (grey level)',
        'CC0Textures "Bricks25" (perspective-corrected by scikit-image)',
        'CC0 1.0'),
    AssetSource(
        'grass.png',
        'b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89',
        ('grass',), 'random crops (grey level)',
        'DeviantArt, linolafett "Grass-01"', 'CC0 1.0'),
    AssetSource(
        'gravel.png',
        'c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12',
        ('gravel',), 'random crops (grey level)',
        'CC0Textures "Gravel04"', 'CC0 1.0'),
    AssetSource(
        'coffee.png',
        'cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7',
        ('wood', 'cup'), 'table wood grain (x >= 480); cup on saucer '
        '(elliptical cut-out)',
        'photograph by Rachel Michetti, courtesy of Pikolo Espresso Bar',
        'CC0 1.0 (no copyright restrictions)'),
    AssetSource(
        'astronaut.png',
        '88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5',
        ('person', 'banner'), "the astronaut's face (elliptical cut-out); "
        'the US flag (rectangle, top left)',
        'NASA Great Images database, portrait of Eileen Collins',
        'public domain (no known copyright restrictions)'),
    AssetSource(
        'chelsea.png',
        '596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb',
        ('cat', 'horse'), "Chelsea's face (elliptical cut-out); her fur "
        '(left of the face) as the fill of the horse silhouette',
        'photograph by Stefan van der Walt', 'CC0 1.0'),
    AssetSource(
        'coins.png',
        'f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba',
        ('metal',), 'each coin, cut out along its own outline (Otsu '
        'threshold, opened, holes filled)',
        'Brooklyn Museum open collection, Greek coins from Pompeii',
        'no known copyright restrictions'),
    AssetSource(
        'page.png',
        '341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3',
        ('paper',), 'random rectangles of the scanned text',
        'scikit-image, a scanned printed page',
        'BSD-3-Clause (scikit-image data; no separate notice)'),
    AssetSource(
        'horse.png',
        'c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455',
        ('horse',), 'the silhouette as the object mask',
        'openclipart 158377, "horse" by Andreas Preuss (marauder)', 'CC0 1.0'),
)


def _skimage_data_dir() -> str:
    try:
        import skimage.data
    except ImportError as e:  # pragma: no cover - the pin installs it
        raise ImportError(
            'the collage dataset reads the photographs shipped with '
            'scikit-image: pip install scikit-image==0.26.0') from e
    return osp.dirname(skimage.data.__file__)


def _sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_assets(data_dir: Optional[str] = None) -> Dict[str, str]:
    """Paths of all assets, after checking that each hash is the recorded one.

    Raises:
        FileNotFoundError / ValueError: naming the file and what to install.
    """
    data_dir = data_dir or _skimage_data_dir()
    paths = {}
    for src in COLLAGE_SOURCES:
        path = osp.join(data_dir, src.file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{path}: missing; the collage set needs the photographs of '
                'the scikit-image 0.26.0 wheel (pip install '
                'scikit-image==0.26.0)')
        digest = _sha256(path)
        if digest != src.sha256:
            raise ValueError(
                f'{path}: SHA-256 {digest[:12]}... differs from the recorded '
                f'{src.sha256[:12]}...; install scikit-image==0.26.0 so the '
                'collage set is the same on every machine')
        paths[src.file] = path
    return paths


def _read_rgb(path: str) -> np.ndarray:
    im = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if im.ndim == 2:
        return np.repeat(im[..., None], 3, axis=2)
    if im.shape[2] == 4:
        im = im[..., :3]
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class _Cutout:
    """A real object: its pixels and its mask (float32 RGB, bool)."""
    image: np.ndarray
    mask: np.ndarray


def _ellipse_cutout(im: np.ndarray, x0: int, y0: int, x1: int,
                    y1: int) -> _Cutout:
    crop = im[y0:y1, x0:x1].astype(np.float32)
    h, w = crop.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    mask = (((yy + 0.5 - h / 2) / (h / 2))**2 +
            ((xx + 0.5 - w / 2) / (w / 2))**2) <= 1.0
    return _Cutout(crop, mask)


@functools.lru_cache(maxsize=1)
def load_assets() -> Dict[str, object]:
    """Read and prepare every asset once: textures, crops and cut-outs."""
    from scipy import ndimage as ndi
    paths = check_assets()
    rgb = {f: _read_rgb(p) for f, p in paths.items()}
    coffee, astro, cat = rgb['coffee.png'], rgb['astronaut.png'], rgb[
        'chelsea.png']
    coins_grey = rgb['coins.png'][..., 0]
    # coins: Otsu threshold, opened, holes filled; one cut-out per coin
    # (components of coin size: the bright top band and specks are dropped)
    hist = np.bincount(coins_grey.ravel(), minlength=256).astype(np.float64)
    w0 = np.cumsum(hist)
    mu = np.cumsum(hist * np.arange(256))
    split = (w0 > 0) & (w0 < w0[-1])  # both sides non-empty
    between = np.where(split, (mu[-1] * w0 - mu * w0[-1])**2 / np.where(
        split, w0 * (w0[-1] - w0), 1.0), 0.0)
    fg = coins_grey > int(np.argmax(between))
    fg = ndi.binary_fill_holes(ndi.binary_opening(fg, iterations=2))
    lab, n = ndi.label(fg)
    coins: List[_Cutout] = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        m = lab[sl] == i
        if not 700 <= m.sum() <= 4000:
            continue
        coins.append(_Cutout(rgb['coins.png'][sl].astype(np.float32), m))
    horse_mask = rgb['horse.png'][..., 0] < 128
    ys, xs = np.nonzero(horse_mask)
    horse_mask = horse_mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return dict(
        stuff={
            'sky-other': rgb['hubble_deep_field.jpg'],
            'wall-brick': rgb['brick.png'],
            'grass': rgb['grass.png'],
            'gravel': rgb['gravel.png'],
            'wood': coffee[:, 480:],
        },
        person=_ellipse_cutout(astro, 150, 20, 320, 260),
        cat=_ellipse_cutout(cat, 130, 10, 340, 290),
        cup=_ellipse_cutout(coffee, 60, 30, 470, 380),
        banner=_Cutout(astro[0:240, 0:75].astype(np.float32),
                       np.ones((240, 75), bool)),
        page=rgb['page.png'][30:, :],
        fur=cat[:, :130],
        coins=tuple(coins),
        horse_mask=horse_mask,
    )


def _random_crop(rng: np.random.Generator, src: np.ndarray, h: int, w: int,
                 lo: float, hi: float) -> np.ndarray:
    """A crop of ``src`` whose side is ``lo..hi`` of its short side, resized
    to (h, w), randomly flipped and turned by 90 degrees."""
    sh, sw = src.shape[:2]
    side = int(rng.uniform(lo, hi) * min(sh, sw))
    ch, cw = min(sh, side), min(sw, int(side * w / h))
    y0 = int(rng.integers(0, sh - ch + 1))
    x0 = int(rng.integers(0, sw - cw + 1))
    crop = src[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5 and ch == cw:
        crop = np.rot90(crop)
    return cv2.resize(np.ascontiguousarray(crop).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_AREA)


def _photometric(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Random contrast, brightness and a slight colour cast."""
    gain = rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, 3)
    return x * gain + rng.uniform(-18, 18)


@dataclass(frozen=True)
class _Thing:
    name: str
    prob: float  # probability that an image contains it
    extent: Tuple[int, int]  # min / max of the longer side, in pixels
    max_count: int = 1


_THINGS: Tuple[_Thing, ...] = (
    _Thing('person', 0.45, (20, 36)),
    _Thing('cup', 0.30, (16, 30)),
    _Thing('metal', 0.30, (9, 16), max_count=3),
    _Thing('paper', 0.25, (14, 26)),
    _Thing('cat', 0.20, (18, 32)),
    _Thing('banner', 0.12, (16, 28)),
    _Thing('horse', 0.10, (22, 38)),
)


def _thing_cutout(rng: np.random.Generator, name: str,
                  assets: Dict[str, object], extent: float) -> _Cutout:
    """The pixels and mask of one instance, at ``extent`` px (longer side)."""
    if name == 'metal':
        coins = assets['coins']
        src = coins[int(rng.integers(0, len(coins)))]  # type: ignore
    elif name == 'paper':
        page = assets['page']
        ph = int(rng.uniform(40, 110))
        pw = int(ph * rng.uniform(0.7, 1.6))
        img = _random_crop(rng, page, ph, min(pw, page.shape[1]), 0.4,
                           1.0)  # type: ignore[arg-type]
        src = _Cutout(img, np.ones(img.shape[:2], bool))
    elif name == 'horse':
        mask = assets['horse_mask']
        fur = _random_crop(rng, assets['fur'], *mask.shape, 0.5,
                           1.0)  # type: ignore[misc]
        src = _Cutout(fur * rng.uniform(0.8, 1.0), mask)  # type: ignore
    else:
        src = assets[name]  # type: ignore[assignment]
    sh, sw = src.mask.shape
    if name == 'banner' and rng.random() < 0.5:  # a flag hung sideways
        src = _Cutout(np.ascontiguousarray(np.rot90(src.image)),
                      np.ascontiguousarray(np.rot90(src.mask)))
        sh, sw = sw, sh
    scale = extent / max(sh, sw)
    th, tw = max(2, int(round(sh * scale))), max(2, int(round(sw * scale)))
    image = cv2.resize(src.image, (tw, th), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(src.mask.astype(np.float32), (tw, th),
                      interpolation=cv2.INTER_AREA) >= 0.5
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return _Cutout(_photometric(rng, image), mask)


def render_collage(rng: np.random.Generator,
                   size: Tuple[int, int] = (96, 96)
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one collage image and its label map (COCO-Stuff train ids, 255).

    Args:
        rng: The random generator that fixes this sample.
        size: (height, width).

    Returns:
        ``(image, label)``: uint8 RGB (H, W, 3) and uint8 (H, W).
    """
    assets = load_assets()
    stuff: Dict[str, np.ndarray] = assets['stuff']  # type: ignore[assignment]
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    label = np.empty((h, w), np.uint8)
    image = np.zeros((h, w, 3), np.float32)
    # sky band above a wavy horizon in 40% of the images
    horizon = np.full((h, w), -1.0, np.float32)
    if rng.random() < 0.4:
        base = rng.uniform(0.2, 0.5) * h
        horizon = base + rng.uniform(1, 5) * np.sin(
            xx / w * 2 * np.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6.3))
    sky = yy < horizon
    # ground: a Voronoi partition of 1-4 cells over the four ground textures
    ground = ('wall-brick', 'grass', 'gravel', 'wood')
    n_cells = int(rng.integers(1, 5))
    seeds = rng.uniform(0, 1, (n_cells, 2)) * (h, w)
    cell = ((yy[None] - seeds[:, 0, None, None])**2 +
            (xx[None] - seeds[:, 1, None, None])**2).argmin(0)
    cover = rng.integers(0, len(ground), n_cells)
    regions = [(ground[cover[k]], (cell == k) & ~sky) for k in range(n_cells)]
    regions.append(('sky-other', sky))
    for name, m in regions:
        if not m.any():
            continue
        lo, hi = (0.15, 0.35) if name == 'sky-other' else (0.2, 0.5)
        if name == 'wood':
            lo, hi = 0.5, 1.0
        patch = _photometric(rng, _random_crop(rng, stuff[name], h, w, lo,
                                               hi))
        label[m] = COLLAGE_TRAIN_IDS[name]
        image[m] = patch[m]
    # things, back to front, fully inside the image
    for thing in _THINGS:
        if rng.random() >= thing.prob:
            continue
        for _ in range(int(rng.integers(1, thing.max_count + 1))):
            cut = _thing_cutout(rng, thing.name, assets,
                                rng.uniform(*thing.extent))
            th, tw = cut.mask.shape
            y0 = int(rng.integers(0, max(1, h - th + 1)))
            x0 = int(rng.integers(0, max(1, w - tw + 1)))
            m = cut.mask[:h - y0, :w - x0]
            region = (slice(y0, y0 + m.shape[0]), slice(x0, x0 + m.shape[1]))
            label[region][m] = COLLAGE_TRAIN_IDS[thing.name]
            image[region][m] = cut.image[:m.shape[0], :m.shape[1]][m]
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):  # unlabelled blobs
        r = rng.uniform(2, 4)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        label[(yy - cy)**2 + (xx - cx)**2 <= r * r] = IGNORE_INDEX
    return np.clip(image, 0, 255).astype(np.uint8), label
