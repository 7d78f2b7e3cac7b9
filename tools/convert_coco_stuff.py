#!/usr/bin/env python
"""Convert the official COCO-Stuff downloads to the layouts segreg reads.

Three sources (``--source``), each written as ``*_labelTrainIds.png`` train-id
maps (255 = ignore) next to the images; layouts in data/README.md, id
mappings in segreg/datasets/coco_stuff.py:

``164k``  ``stuffthingmaps_trainval2017`` PNGs (pixel = COCO-Stuff id - 1,
          0-181, 255 unlabeled) -> 171 train ids in ``data/coco_stuff164k``
          (the 11 thing ids without annotations are dropped to 255).
``10k``   COCO-Stuff10k v1.1 (``images/*.jpg``, ``annotations/*.mat`` with
          ``S`` = id, 0 unlabeled, ``imageLists/{train,test}.txt``) -> the
          same 171 train ids in ``data/coco_stuff10k`` (train2014/test2014),
          so ``reduce_zero_label=False``.
``json``  ``stuff_{train,val}2017.json`` (RLE, read with pycocotools) -> the
          92-class stuff-only setting (0 = "other", 1-91 = stuff) in
          ``data/coco_stuff_stuffonly``; with ``--things-dir`` (holding
          ``instances_{train,val}2017.json``) the full 171-class maps in the
          164k layout instead: stuff first, then thing instances painted over
          them (largest first, so small objects stay on top); "other" pixels
          no instance covers stay 255.

Every run is parallel (``--nproc``), shows a progress bar, and is safe to
interrupt and re-run: each PNG is written to a hidden temporary name and
renamed into place (``os.replace``), so a killed run leaves no half-written
label under the final name; a re-run removes stale temporary files, skips
outputs that exist and verify (decodable, expected size, only valid ids) and
rewrites the others. It ends with per-split counts and the class histogram,
also saved as ``OUT/convert_<source>_summary.json``. Exit status 1 if any
file failed.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from segreg.datasets.sample_checks import hist256
from segreg.utils.progress import progress_map

try:
    from segreg.datasets.coco_stuff import (COCO_ID_TO_STUFF_ONLY_TRAIN_ID,
                                            COCO_ID_TO_TRAIN_ID,
                                            COCO_STUFF_CLASSES, OTHER_ID,
                                            STUFF_ONLY_CLASSES,
                                            STUFFTHINGMAP_TO_TRAIN_ID)
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from segreg.datasets.coco_stuff import (COCO_ID_TO_STUFF_ONLY_TRAIN_ID,
                                            COCO_ID_TO_TRAIN_ID,
                                            COCO_STUFF_CLASSES, OTHER_ID,
                                            STUFF_ONLY_CLASSES,
                                            STUFFTHINGMAP_TO_TRAIN_ID)

IGNORE = 255
LABEL_SUFFIX = '_labelTrainIds.png'
TMP_MARK = '.segreg-tmp'
DEFAULT_OUT = {
    '164k': 'data/coco_stuff164k',
    '10k': 'data/coco_stuff10k',
    'json': 'data/coco_stuff_stuffonly',
    'json+things': 'data/coco_stuff164k',
}
#: Official split sizes, to warn about incomplete downloads.
OFFICIAL_COUNTS = {
    'train2017': 118287, 'val2017': 5000, 'train2014': 9000,
    'test2014': 1000
}
TEN_K_SPLITS = {'train': 'train2014', 'test': 'test2014'}

# --------------------------------------------------------------- file I/O


def tmp_path_for(path: str) -> str:
    """Hidden temporary name next to ``path`` (same file system)."""
    d, name = osp.split(path)
    return osp.join(d, f'.{name}{TMP_MARK}-{os.getpid()}')


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    tmp = tmp_path_for(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_png_atomic(path: str, label: np.ndarray) -> None:
    ok, buf = cv2.imencode('.png', label)
    if not ok:
        raise IOError(f'PNG encoding failed for {path}')
    write_bytes_atomic(path, buf.tobytes())


def remove_stale_tmp(folder: str) -> int:
    """Delete temporary files a killed run left in ``folder``."""
    if not osp.isdir(folder):
        return 0
    n = 0
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith('.') and TMP_MARK in e.name:
                os.remove(e.path)
                n += 1
    return n


def read_label(path: str) -> np.ndarray:
    """Read an id map as stored (palette indices for 'P' PNGs)."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im)


def place_image(src: str, dst: str, mode: str) -> str:
    """Put image ``src`` at ``dst`` (symlink/copy/hardlink), resumably.

    Returns 'done', 'skipped' or 'missing' (source absent).
    """
    if not osp.isfile(src):
        return 'missing'
    src = osp.abspath(src)
    # an existing image (link to it, or a copy of the same size) is kept,
    # whatever the mode; a dangling link or a different file is replaced
    if osp.exists(dst) and (osp.samefile(src, dst)
                            or osp.getsize(dst) == osp.getsize(src)):
        return 'skipped'
    tmp = tmp_path_for(dst)
    try:
        if mode == 'symlink':
            os.symlink(src, tmp)
        elif mode == 'hardlink':
            os.link(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise
    return 'done'


# ------------------------------------------------------- label producers


def _decode_segmentation(segm, h: int, w: int) -> np.ndarray:
    """Boolean mask of a COCO segmentation (polygons, RLE or compressed)."""
    from pycocotools import mask as mask_utils
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    elif isinstance(segm.get('counts'), list):
        rle = mask_utils.frPyObjects(segm, h, w)
    else:
        rle = segm
    return mask_utils.decode(rle).astype(bool)


def paint_annotations(h: int, w: int, stuff: Sequence[Tuple[int, object]],
                      things: Sequence[Tuple[int, object]],
                      lut: np.ndarray) -> np.ndarray:
    """Paint stuff annotations, then thing instances over them.

    ``stuff`` and ``things`` are ``(category_id, segmentation)`` pairs,
    painted in the given order; categories that ``lut`` maps to 255 are not
    painted (they would erase labels).
    """
    label = np.full((h, w), IGNORE, dtype=np.uint8)
    for cat, segm in list(stuff) + list(things):
        value = lut[cat] if 0 <= cat < 256 else IGNORE
        if value == IGNORE:
            continue
        label[_decode_segmentation(segm, h, w)] = value
    return label


def produce_label(spec: tuple) -> np.ndarray:
    """Build the train-id map from a source spec (see ``make_tasks``)."""
    kind = spec[0]
    if kind == 'png':  # 164k stuffthingmaps: value = id - 1
        src = read_label(spec[1])
        if src.ndim != 2:
            raise ValueError(f'{spec[1]}: expected a single-channel id map, '
                             f'got shape {src.shape}')
        if src.dtype != np.uint8:
            src = np.where(src > 255, IGNORE, src).astype(np.uint8)
        return STUFFTHINGMAP_TO_TRAIN_ID[src]
    if kind == 'mat':  # 10k: S = id, 0 unlabeled
        from scipy.io import loadmat
        s = np.asarray(loadmat(spec[1])['S'])
        if s.ndim != 2:
            raise ValueError(f'{spec[1]}: S has shape {s.shape}')
        s = s.astype(np.int64)
        s = np.where((s < 0) | (s > 255), IGNORE, s)
        return COCO_ID_TO_TRAIN_ID[s]
    if kind == 'json':
        _, h, w, stuff, things, lut_name = spec
        lut = (COCO_ID_TO_STUFF_ONLY_TRAIN_ID
               if lut_name == 'stuffonly' else COCO_ID_TO_TRAIN_ID)
        return paint_annotations(h, w, stuff, things, lut)
    raise ValueError(f'unknown source kind {kind!r}')


def expected_size(spec: tuple, image: Optional[str]) -> Optional[tuple]:
    """(h, w) of the label to produce, from headers only (no decoding)."""
    kind = spec[0]
    if kind == 'json':
        return spec[1], spec[2]
    path = spec[1] if kind == 'png' else image
    if path and osp.isfile(path):
        try:
            with Image.open(path) as im:
                return im.size[1], im.size[0]
        except OSError:
            return None
    return None


# ------------------------------------------------------------- the worker


def run_task(task: dict) -> dict:
    """Convert one label (and place its image); never raises."""
    res = dict(split=task['split'], name=task['name'], label='failed',
               image='none', error=None, hist=None)
    out = task['out']
    num_classes = task['num_classes']
    try:
        size = expected_size(task['spec'], task.get('img_src'))
        label = None
        if osp.isfile(out) and not task['overwrite']:
            try:
                label = read_label(out)
                ok = (label.ndim == 2 and label.dtype == np.uint8
                      and (size is None or label.shape == tuple(size)))
                if ok:
                    hist = hist256(label)
                    ok = not hist[num_classes:IGNORE].any()
            except Exception:  # unreadable or truncated: convert again
                ok = False
            res['label'] = 'skipped' if ok else 'repaired'
            if not ok:
                label = None
        if label is None:
            label = produce_label(task['spec'])
            if size is not None and label.shape != tuple(size):
                raise ValueError(f'label {label.shape} != image size {size}')
            write_png_atomic(out, label)
            if res['label'] != 'repaired':
                res['label'] = 'converted'
        res['hist'] = hist256(label)
    except Exception as e:  # report, keep going
        res['label'] = 'failed'
        res['error'] = f'{type(e).__name__}: {e}'
    if task.get('img_dst'):
        try:
            res['image'] = place_image(task['img_src'], task['img_dst'],
                                       task['img_mode'])
            if res['image'] == 'missing':
                res['error'] = ((res['error'] or '') +
                                f" image missing: {task['img_src']}").strip()
        except Exception as e:
            res['image'] = 'failed'
            res['error'] = (res['error'] or '') + f' image: {e}'
    return res


def run_tasks(tasks: List[dict], nproc: int) -> List[dict]:
    return progress_map(run_task, tasks, nproc)


# ---------------------------------------------------------- task builders


def _task(split, name, spec, out, num_classes, args, img_src=None,
          img_dst=None) -> dict:
    mode = args.images
    if img_src is None or mode == 'none':
        img_dst = None
    return dict(split=split, name=name, spec=spec, out=out,
                num_classes=num_classes, overwrite=args.overwrite,
                img_src=img_src, img_dst=img_dst, img_mode=mode)


def tasks_164k(args, out_root: str) -> List[dict]:
    tasks = []
    for split in args.splits or ('train2017', 'val2017'):
        src_dir = osp.join(args.src, split)
        if not osp.isdir(src_dir):
            src_dir = osp.join(args.src, 'annotations', split)
        if not osp.isdir(src_dir):
            raise FileNotFoundError(
                f'no {split}/ (or annotations/{split}/) of stuffthingmaps '
                f'PNGs under {args.src}')
        names = sorted(
            f[:-4] for f in os.listdir(src_dir)
            if f.endswith('.png') and not f.endswith(LABEL_SUFFIX)
            and not f.startswith('.'))
        for name in names:
            img_src = (osp.join(args.img_dir, split, name + '.jpg')
                       if args.img_dir else None)
            tasks.append(
                _task(split, name, ('png', osp.join(src_dir, name + '.png')),
                      osp.join(out_root, 'annotations', split,
                               name + LABEL_SUFFIX), 171, args, img_src,
                      osp.join(out_root, 'images', split, name + '.jpg')))
    return tasks


def tasks_10k(args, out_root: str) -> List[dict]:
    tasks = []
    img_dir = args.img_dir or osp.join(args.src, 'images')
    for lst in args.splits or ('train', 'test'):
        split = TEN_K_SPLITS.get(lst, lst)
        list_file = osp.join(args.src, 'imageLists', f'{lst}.txt')
        if not osp.isfile(list_file):
            raise FileNotFoundError(f'{list_file} not found (COCO-Stuff10k '
                                    'has imageLists/train.txt and test.txt)')
        with open(list_file) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        for name in names:
            name = osp.splitext(name)[0]
            tasks.append(
                _task(split, name,
                      ('mat', osp.join(args.src, 'annotations',
                                       name + '.mat')),
                      osp.join(out_root, 'annotations', split,
                               name + LABEL_SUFFIX), 171, args,
                      osp.join(img_dir, name + '.jpg'),
                      osp.join(out_root, 'images', split, name + '.jpg')))
    return tasks


def tasks_json(args, out_root: str) -> List[dict]:
    tasks = []
    with_things = args.things_dir is not None
    lut_name = 'full' if with_things else 'stuffonly'
    num_classes = 171 if with_things else 92
    for split in args.splits or ('train2017', 'val2017'):
        stuff_file = osp.join(args.src, f'stuff_{split}.json')
        if not osp.isfile(stuff_file):
            raise FileNotFoundError(f'{stuff_file} not found')
        print(f'loading {stuff_file} ...', flush=True)
        with open(stuff_file) as f:
            stuff = json.load(f)
        images = {im['id']: im for im in stuff['images']}
        stuff_anns: Dict[int, list] = {i: [] for i in images}
        for a in stuff['annotations']:
            if with_things and a['category_id'] == OTHER_ID:
                continue  # thing pixels come from the instances
            stuff_anns.setdefault(a['image_id'], []).append(
                (a['category_id'], a['segmentation']))
        del stuff
        thing_anns: Dict[int, list] = {}
        if with_things:
            inst_file = osp.join(args.things_dir, f'instances_{split}.json')
            if not osp.isfile(inst_file):
                raise FileNotFoundError(f'{inst_file} not found')
            print(f'loading {inst_file} ...', flush=True)
            with open(inst_file) as f:
                inst = json.load(f)
            for im in inst['images']:
                images.setdefault(im['id'], im)
            for a in inst['annotations']:
                if args.skip_crowd and a.get('iscrowd', 0):
                    continue
                thing_anns.setdefault(a['image_id'], []).append(
                    (a.get('area', 0), a['category_id'], a['segmentation']))
            del inst
        for img_id in sorted(images):
            im = images[img_id]
            name = osp.splitext(im['file_name'])[0]
            things = [(c, s) for _, c, s in sorted(
                thing_anns.get(img_id, []), key=lambda t: -t[0])]
            spec = ('json', int(im['height']), int(im['width']),
                    stuff_anns.get(img_id, []), things, lut_name)
            img_src = (osp.join(args.img_dir, split, im['file_name'])
                       if args.img_dir else None)
            tasks.append(
                _task(split, name, spec,
                      osp.join(out_root, 'annotations', split,
                               name + LABEL_SUFFIX), num_classes, args,
                      img_src,
                      osp.join(out_root, 'images', split, im['file_name'])))
    return tasks


# ----------------------------------------------------------------- report


def summarize(results: List[dict], class_names: Sequence[str],
              elapsed: float) -> Tuple[dict, str]:
    splits: Dict[str, dict] = {}
    total_hist = np.zeros(256, np.int64)
    img_count = np.zeros(256, np.int64)
    failures = []
    for r in results:
        s = splits.setdefault(
            r['split'],
            dict(labels=0, converted=0, skipped=0, repaired=0, failed=0,
                 images=dict()))
        s['labels'] += 1
        s[r['label']] += 1
        if r['image'] != 'none':
            s['images'][r['image']] = s['images'].get(r['image'], 0) + 1
        if r['error']:
            failures.append(f"{r['split']}/{r['name']}: {r['error']}")
        if r['hist'] is not None:
            total_hist += r['hist']
            img_count += r['hist'] > 0
    n = len(class_names)
    labelled = int(total_hist[:n].sum())
    classes = [
        dict(id=i, name=class_names[i], pixels=int(total_hist[i]),
             images=int(img_count[i]),
             percent=100.0 * total_hist[i] / max(labelled, 1))
        for i in range(n)
    ]
    summary = dict(
        splits=splits, classes=classes, ignore_pixels=int(total_hist[IGNORE]),
        labelled_pixels=labelled, failures=failures,
        seconds=round(elapsed, 2),
        labels_per_second=round(len(results) / max(elapsed, 1e-9), 1))
    lines = ['', f'{"split":<12}{"labels":>8}{"converted":>11}{"skipped":>9}'
             f'{"repaired":>10}{"failed":>8}  images']
    for name, s in sorted(splits.items()):
        imgs = ', '.join(f'{k} {v}' for k, v in sorted(s['images'].items()))
        lines.append(f'{name:<12}{s["labels"]:>8}{s["converted"]:>11}'
                     f'{s["skipped"]:>9}{s["repaired"]:>10}{s["failed"]:>8}'
                     f'  {imgs or "-"}')
        if name in OFFICIAL_COUNTS and s['labels'] != OFFICIAL_COUNTS[name]:
            lines.append(f'  note: the official {name} has '
                         f'{OFFICIAL_COUNTS[name]} images')
    lines.append(f'{len(results)} labels in {elapsed:.1f} s '
                 f'({summary["labels_per_second"]} labels/s)')
    lines += ['', 'Class histogram (all splits; % of labelled pixels):',
              f'{"id":>4}  {"class":<18}{"pixels":>14}{"%":>8}{"images":>9}']
    for c in classes:
        lines.append(f'{c["id"]:>4}  {c["name"]:<18}{c["pixels"]:>14}'
                     f'{c["percent"]:>8.3f}{c["images"]:>9}')
    total = labelled + int(total_hist[IGNORE])
    lines.append(f'ignore (255): {int(total_hist[IGNORE])} pixels '
                 f'({100.0 * total_hist[IGNORE] / max(total, 1):.2f}% of all)')
    if failures:
        failures.sort()
        lines += ['', f'{len(failures)} FAILED:'] + [
            '  ' + f for f in failures[:50]]
        if len(failures) > 50:
            lines.append(f'  ... and {len(failures) - 50} more (see summary)')
    return summary, '\n'.join(lines)


# -------------------------------------------------------------------- CLI


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='convert_coco_stuff.py',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  # COCO-Stuff164k: unzip stuffthingmaps_trainval2017.zip into ann/ and the
  # COCO 2017 images into coco/ (coco/train2017, coco/val2017)
  python tools/convert_coco_stuff.py --source 164k ann --img-dir coco
  # COCO-Stuff10k v1.1 (images/, annotations/, imageLists/)
  python tools/convert_coco_stuff.py --source 10k cocostuff-10k-v1.1
  # stuff-only, 92 classes (stuff_trainval2017.zip unzipped into stuff/)
  python tools/convert_coco_stuff.py --source json stuff --img-dir coco
  # full 171 classes from the JSONs (annotations_trainval2017.zip in inst/)
  python tools/convert_coco_stuff.py --source json stuff \\
      --things-dir inst/annotations --img-dir coco
""")
    p.add_argument('--source', required=True, choices=('164k', '10k', 'json'),
                   help='which official download SRC holds (see above)')
    p.add_argument('src', metavar='SRC',
                   help='164k: folder with train2017/ and val2017/ '
                   'stuffthingmaps PNGs (or annotations/<split>/); 10k: the '
                   'unzipped cocostuff-10k-v1.1 folder; json: folder with '
                   'stuff_<split>.json')
    p.add_argument('-o', '--out-dir',
                   help='output root (default: data/coco_stuff164k, '
                   'data/coco_stuff10k, data/coco_stuff_stuffonly, or '
                   'data/coco_stuff164k for json with --things-dir)')
    p.add_argument('--img-dir',
                   help='folder with the COCO images: <split>/<name>.jpg for '
                   '164k and json (e.g. coco/ holding train2017/, val2017/); '
                   'the flat image folder for 10k (default SRC/images). '
                   'Without it (164k, json) images are not placed: put them '
                   'in OUT/images/<split>/ yourself')
    p.add_argument('--images', default='symlink',
                   choices=('symlink', 'copy', 'hardlink', 'none'),
                   help='how images reach OUT/images/<split>/ (default '
                   'symlink, absolute targets; none: labels only)')
    p.add_argument('--things-dir',
                   help='json only: folder with instances_<split>.json; '
                   'writes the full 171-class maps instead of stuff-only')
    p.add_argument('--skip-crowd', action='store_true',
                   help='json with --things-dir: leave iscrowd instances out '
                   '(their pixels become 255); default paints them')
    p.add_argument('--splits', nargs='+',
                   help='splits to convert (default train2017 val2017; for '
                   '10k the image lists: train test)')
    p.add_argument('--nproc', type=int, default=min(8, os.cpu_count() or 1),
                   help='worker processes (default min(8, CPUs))')
    p.add_argument('--overwrite', action='store_true',
                   help='convert every label again, even if it verifies')
    args = p.parse_args(argv)
    if args.source != 'json' and (args.things_dir or args.skip_crowd):
        p.error('--things-dir/--skip-crowd only apply to --source json')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    key = args.source + ('+things' if args.things_dir else '')
    out_root = args.out_dir or DEFAULT_OUT[key]
    if args.source == '164k':
        tasks = tasks_164k(args, out_root)
    elif args.source == '10k':
        tasks = tasks_10k(args, out_root)
    else:
        tasks = tasks_json(args, out_root)
    class_names = STUFF_ONLY_CLASSES if key == 'json' else COCO_STUFF_CLASSES

    stale = 0
    for split in sorted({t['split'] for t in tasks}):
        for sub in ('annotations', 'images'):
            folder = osp.join(out_root, sub, split)
            if sub == 'images' and not any(
                    t['img_dst'] for t in tasks if t['split'] == split):
                if not osp.isdir(folder):
                    print(f'warning: {folder} does not exist; put the '
                          f'{split} images there (or pass --img-dir)')
                continue
            os.makedirs(folder, exist_ok=True)
            stale += remove_stale_tmp(folder)
    if stale:
        print(f'removed {stale} temporary files of an interrupted run')
    print(f'{len(tasks)} labels ({args.source}) -> {out_root}, '
          f'{args.nproc} processes')
    t0 = time.perf_counter()
    results = run_tasks(tasks, args.nproc)
    elapsed = time.perf_counter() - t0
    summary, text = summarize(results, class_names, elapsed)
    summary.update(source=args.source, out_dir=out_root,
                   num_classes=len(class_names))
    print(text)
    os.makedirs(out_root, exist_ok=True)
    summary_path = osp.join(out_root, f'convert_{args.source}_summary.json')
    write_bytes_atomic(summary_path,
                       json.dumps(summary, indent=1).encode())
    print(f'summary: {summary_path}')
    return 1 if summary['failures'] else 0


if __name__ == '__main__':
    sys.exit(main())
