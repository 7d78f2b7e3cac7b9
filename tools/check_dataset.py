#!/usr/bin/env python
"""Check a segmentation dataset on disk against a config, before training.

Reads the ``<split>_dataloader.dataset`` section of CONFIG (dataset wrappers
and ConcatDataset included), builds the dataset class lazily to get exactly
what mmseg will read (data_root + data_prefix, img/seg suffixes, ann_file,
reduce_zero_label, label_map of a restricted class list, ignore_index), then
decodes every image and label in parallel and reports:

* missing pairs (an image without a label) and extra labels (a label without
  an image; not checked when an ann_file lists the split);
* unreadable or truncated images and labels (a full decode; ``--fast``
  decodes labels fully but reads only image headers and checks that the JPEG
  or PNG ends properly);
* labels that are not single-channel id maps (e.g. RGB colour masks);
* image / label size mismatches (image size as mmcv loads it, i.e. after the
  EXIF orientation);
* label values outside the class range other than the ignore value (with
  reduce_zero_label, 0 is the ignore value and 1..C the classes);
* a class-frequency table of the classes the model will see: pixels, share
  of labelled pixels, images containing the class; classes that never occur
  and images with no labelled pixel are listed as warnings.

Exit status: 0 when no problem was found (warnings allowed), 1 otherwise, 2
for a config or folder that cannot be checked at all.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image
from segreg.datasets.sample_checks import ends_properly, hist256
from segreg.utils.progress import progress_map

WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset')
ERROR_KINDS = {
    'missing_label': 'image without a label',
    'missing_image': 'label without an image (extra label)',
    'unreadable_image': 'unreadable or truncated image',
    'unreadable_label': 'unreadable or truncated label',
    'label_not_single_channel': 'label is not a single-channel id map',
    'size_mismatch': 'image and label sizes differ',
    'label_out_of_range': 'label values outside the class range',
}
WARNING_KINDS = {
    'empty_label': 'label without any labelled pixel',
    'class_never_seen': 'class with no pixel in this split',
}
EXIF_ORIENTATION = 0x0112

# ------------------------------------------------------------ the config


def _dataset_cfgs(ds_cfg: dict) -> List[dict]:
    """Leaf dataset configs under wrappers and ConcatDataset."""
    t = ds_cfg.get('type')
    if t == 'ConcatDataset':
        return [c for d in ds_cfg['datasets'] for c in _dataset_cfgs(d)]
    if t in WRAPPERS or ('dataset' in ds_cfg and 'data_prefix' not in ds_cfg):
        return _dataset_cfgs(ds_cfg['dataset'])
    return [ds_cfg]


def describe_datasets(cfg, split: str,
                      data_root: Optional[str] = None) -> List[dict]:
    """What mmseg will read for ``<split>_dataloader``, one dict per leaf."""
    from mmseg.registry import DATASETS
    key = f'{split}_dataloader'
    if key not in cfg or 'dataset' not in cfg[key]:
        raise KeyError(f'the config has no {key}.dataset')
    out = []
    for leaf in _dataset_cfgs(cfg[key]['dataset']):
        leaf = copy.deepcopy(dict(leaf))
        leaf['pipeline'] = []
        leaf['lazy_init'] = True
        if data_root is not None:
            leaf['data_root'] = data_root
        ds = DATASETS.build(leaf)
        disk_classes = type(ds).METAINFO.get('classes') or ds.metainfo.get(
            'classes')
        if not disk_classes:
            raise ValueError(f'{type(ds).__name__}: no class list in the '
                             'dataset class or the config metainfo')
        out.append(
            dict(type=type(ds).__name__,
                 img_dir=ds.data_prefix.get('img_path', ''),
                 seg_dir=ds.data_prefix.get('seg_map_path'),
                 img_suffix=ds.img_suffix, seg_suffix=ds.seg_map_suffix,
                 ann_file=ds.ann_file or None,
                 reduce_zero_label=bool(ds.reduce_zero_label),
                 label_map=dict(ds.label_map) if ds.label_map else None,
                 ignore_index=int(getattr(ds, 'ignore_index', 255)),
                 disk_classes=list(disk_classes),
                 classes=list(ds.metainfo['classes'])))
    return out


def value_table(spec: dict) -> np.ndarray:
    """Raw label value (0-255) -> class index the model sees.

    -1 = ignored, -2 = invalid (outside the class range).
    """
    n = len(spec['disk_classes'])
    table = np.full(256, -2, np.int64)
    ignore = spec['ignore_index']
    if spec['reduce_zero_label']:
        table[1:n + 1] = np.arange(n)
        table[0] = -1
    else:
        table[:n] = np.arange(n)
    if 0 <= ignore < 256:
        table[ignore] = -1
    if spec['label_map']:
        mapped = table.copy()
        for old, new in spec['label_map'].items():
            mapped[table == old] = -1 if new == ignore else new
        table = mapped
    return table


# ------------------------------------------------------------ file lists


def _walk(folder: str, suffix: str) -> Dict[str, str]:
    """{relative name without suffix: path} of files ending with suffix."""
    found = {}
    for dirpath, _, files in os.walk(folder, followlinks=True):
        for f in files:
            if f.endswith(suffix) and not f.startswith('.'):
                path = osp.join(dirpath, f)
                found[osp.relpath(path, folder)[:-len(suffix)]] = path
    return found


def find_pairs(spec: dict) -> Tuple[List[tuple], List[tuple]]:
    """(pairs [(name, img, seg)], problems [(kind, name, msg)])."""
    problems = []
    img_dir, seg_dir = spec['img_dir'], spec['seg_dir']
    if spec['ann_file']:
        with open(spec['ann_file']) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        images = {n: osp.join(img_dir, n + spec['img_suffix']) for n in names}
        labels = ({n: osp.join(seg_dir, n + spec['seg_suffix'])
                   for n in names} if seg_dir else {})
        for n in names:
            if not osp.isfile(images[n]):
                problems.append(('missing_image', n,
                                 f'listed in {spec["ann_file"]} but '
                                 f'{images[n]} is absent'))
        labels_exist = {n: p for n, p in labels.items() if osp.isfile(p)}
    else:
        images = _walk(img_dir, spec['img_suffix'])
        labels_exist = _walk(seg_dir, spec['seg_suffix']) if seg_dir else {}
        for n in sorted(set(labels_exist) - set(images)):
            problems.append(('missing_image', n,
                             f'{labels_exist[n]} has no image '
                             f'{osp.join(img_dir, n + spec["img_suffix"])}'))
    pairs = []
    for n in sorted(images):
        if spec['ann_file'] and not osp.isfile(images[n]):
            continue
        seg = labels_exist.get(n)
        if seg_dir and seg is None:
            problems.append(('missing_label', n,
                             f'{images[n]} has no label '
                             f'{osp.join(seg_dir, n + spec["seg_suffix"])}'))
        pairs.append((n, images[n], seg))
    return pairs, problems


# ------------------------------------------------------------ the worker


def check_pair(task: tuple) -> dict:
    """Decode one image / label pair; never raises."""
    name, img_path, seg_path, fast = task
    res = dict(name=name, problems=[], hist=None)
    img_hw = None
    try:
        with Image.open(img_path) as im:
            if fast:
                if not ends_properly(img_path):
                    raise OSError('file ends before its end marker '
                                  '(truncated)')
            else:
                im.load()
            w, h = im.size
            orient = im.getexif().get(EXIF_ORIENTATION, 1)
        img_hw = (w, h) if orient in (5, 6, 7, 8) else (h, w)
        raw_hw = (h, w)
    except Exception as e:
        res['problems'].append(('unreadable_image', f'{img_path}: {e}'))
    if seg_path is None:
        return res
    try:
        with Image.open(seg_path) as im:
            im.load()
            mode = im.mode
            seg = np.asarray(im)
        if not ends_properly(seg_path):
            raise OSError('file ends before its end marker (truncated)')
    except Exception as e:
        res['problems'].append(('unreadable_label', f'{seg_path}: {e}'))
        return res
    if seg.ndim != 2:
        res['problems'].append(('label_not_single_channel',
                                f'{seg_path}: mode {mode}, shape '
                                f'{seg.shape}; expected one channel of ids'))
        return res
    if img_hw is not None and seg.shape != img_hw:
        msg = f'image {img_hw[0]}x{img_hw[1]} vs label ' \
              f'{seg.shape[0]}x{seg.shape[1]} (HxW)'
        if seg.shape == raw_hw:
            msg += ' after the EXIF orientation that mmcv applies'
        res['problems'].append(('size_mismatch', f'{seg_path}: {msg}'))
    if seg.dtype == np.uint8:
        res['hist'] = hist256(seg)
    else:
        vals, counts = np.unique(seg, return_counts=True)
        hist = np.zeros(256, np.int64)
        inside = (vals >= 0) & (vals < 256)
        hist[vals[inside].astype(np.int64)] = counts[inside]
        res['hist'] = hist
        if (~inside).any():
            res['problems'].append(
                ('label_out_of_range',
                 f'{seg_path}: values {vals[~inside][:10].tolist()}'))
    return res


def run_checks(tasks: List[tuple], nproc: int) -> List[dict]:
    return progress_map(check_pair, tasks, nproc)


# ------------------------------------------------------------ the report


def check_dataset(spec: dict, nproc: int = 1, fast: bool = False) -> dict:
    """Run every check on one dataset; returns the report dict."""
    t0 = time.perf_counter()
    report = dict(dataset=spec, errors=[], warnings=[], num_pairs=0)
    if not osp.isdir(spec['img_dir']):
        report['errors'].append(('missing_folder', spec['img_dir'],
                                 'image folder does not exist'))
        return report
    if spec['seg_dir'] and not osp.isdir(spec['seg_dir']):
        report['errors'].append(('missing_folder', spec['seg_dir'],
                                 'label folder does not exist'))
        return report
    pairs, problems = find_pairs(spec)
    report['errors'] += problems
    report['num_pairs'] = len(pairs)
    if not pairs:
        report['errors'].append(('missing_folder', spec['img_dir'],
                                 f'no *{spec["img_suffix"]} image found'))
        return report
    results = run_checks([(n, i, s, fast) for n, i, s in pairs], nproc)
    table = value_table(spec)
    classes = spec['classes']
    pixels = np.zeros(len(classes), np.int64)
    images = np.zeros(len(classes), np.int64)
    ignored = 0
    for r in sorted(results, key=lambda r: r['name']):
        for kind, msg in r['problems']:
            report['errors'].append((kind, r['name'], msg))
        hist = r['hist']
        if hist is None:
            continue
        bad = np.flatnonzero((table == -2) & (hist > 0))
        if bad.size:
            top = len(spec['disk_classes']) - 1 + spec['reduce_zero_label']
            report['errors'].append(
                ('label_out_of_range', r['name'],
                 f'values {bad[:10].tolist()} ({int(hist[bad].sum())} px); '
                 f'valid: 0-{top} and {spec["ignore_index"]}'))
        ok = table >= 0
        per_class = np.bincount(table[ok], weights=hist[ok],
                                minlength=len(classes)).astype(np.int64)
        pixels += per_class
        images += per_class > 0
        ignored += int(hist[table == -1].sum())
        if per_class.sum() == 0:
            report['warnings'].append(('empty_label', r['name'],
                                       'no labelled pixel'))
    for i in np.flatnonzero(pixels == 0):
        report['warnings'].append(('class_never_seen', classes[i],
                                   f'class {i} has no pixel'))
    total = int(pixels.sum())
    report['classes'] = [
        dict(id=i, name=classes[i], pixels=int(pixels[i]),
             percent=100.0 * pixels[i] / max(total, 1),
             images=int(images[i])) for i in range(len(classes))]
    report['labelled_pixels'] = total
    report['ignored_pixels'] = ignored
    report['seconds'] = round(time.perf_counter() - t0, 3)
    return report


def format_report(report: dict, split: str, max_list: int = 10) -> str:
    spec = report['dataset']
    lines = [
        f'== {spec["type"]} ({split}): {len(spec["classes"])} classes'
        + (f' (restricted from {len(spec["disk_classes"])})'
           if spec['label_map'] else '')
        + (', reduce_zero_label' if spec['reduce_zero_label'] else ''),
        f'   images: {spec["img_dir"]}/**/*{spec["img_suffix"]}',
        f'   labels: {spec["seg_dir"]}/**/*{spec["seg_suffix"]}'
        + (f'   list: {spec["ann_file"]}' if spec['ann_file'] else ''),
        f'   {report["num_pairs"]} images checked'
        + (f' in {report["seconds"]:.2f} s '
           f'({report["num_pairs"] / max(report["seconds"], 1e-9):.0f}/s)'
           if 'seconds' in report else ''),
    ]
    if report.get('classes'):
        lines += ['', f'{"id":>4}  {"class":<20}{"pixels":>14}{"%":>8}'
                  f'{"images":>8}']
        for c in report['classes']:
            flag = '  <- never' if c['pixels'] == 0 else ''
            lines.append(f'{c["id"]:>4}  {c["name"]:<20}{c["pixels"]:>14}'
                         f'{c["percent"]:>8.3f}{c["images"]:>8}{flag}')
        lines.append(f'      ignored: {report["ignored_pixels"]} px, '
                     f'labelled: {report["labelled_pixels"]} px')
    for title, items, names in (('PROBLEMS', report['errors'], ERROR_KINDS),
                                ('warnings', report['warnings'],
                                 WARNING_KINDS)):
        if not items:
            continue
        by_kind: Dict[str, list] = {}
        for kind, name, msg in items:
            by_kind.setdefault(kind, []).append((name, msg))
        lines += ['', f'{title}:']
        for kind, entries in by_kind.items():
            desc = names.get(kind, kind.replace('_', ' '))
            lines.append(f'  {desc} [{kind}]: {len(entries)}')
            if kind == 'class_never_seen':  # one line of names
                shown = ', '.join(n for n, _ in entries[:40])
                more = len(entries) - 40
                lines.append(f'    {shown}' + (f', ... {more} more'
                                                 if more > 0 else ''))
                continue
            for name, msg in entries[:max_list]:
                lines.append(f'    {name}: {msg}')
            if len(entries) > max_list:
                lines.append(f'    ... {len(entries) - max_list} more')
    return '\n'.join(lines)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(
        prog='check_dataset.py', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python tools/check_dataset.py configs/_base_/datasets/coco-stuff164k.py
  python tools/check_dataset.py CONFIG --split val --nproc 16 --json r.json
  python tools/check_dataset.py configs/_base_/datasets/demo.py \\
      --data-root /tmp/demo --fast
""")
    p.add_argument('config', help='a config with <split>_dataloader.dataset')
    p.add_argument('--split', default='train', choices=('train', 'val',
                                                         'test'),
                   help='which dataloader to check (default train)')
    p.add_argument('--nproc', type=int, default=min(8, os.cpu_count() or 1),
                   help='worker processes (default min(8, CPUs))')
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--fast', action='store_true',
                   help='read image headers and end markers only (labels '
                   'are always decoded)')
    p.add_argument('--max-list', type=int, default=10,
                   help='files listed per problem kind (default 10)')
    p.add_argument('--json', metavar='PATH',
                   help='also write the full report as JSON')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.config import Config
    try:
        import segreg  # noqa: F401  (registers segreg datasets)
    except ImportError:  # pragma: no cover
        sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
        import segreg  # noqa: F401
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    try:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        specs = describe_datasets(cfg, args.split, args.data_root)
    except Exception as e:
        print(f'cannot read the dataset from {args.config}: '
              f'{type(e).__name__}: {e}', file=sys.stderr)
        return 2
    reports, n_err, n_warn = [], 0, 0
    for spec in specs:
        report = check_dataset(spec, args.nproc, args.fast)
        print(format_report(report, args.split, args.max_list))
        reports.append(report)
        n_err += len(report['errors'])
        n_warn += len(report['warnings'])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, split=args.split,
                           reports=reports), f, indent=1, default=str)
    files = {name for r in reports for _, name, _ in r['errors']}
    missing = [name for r in reports for kind, name, _ in r['errors']
               if kind == 'missing_folder']
    if missing:
        print(f'\nRESULT: CANNOT CHECK - {", ".join(missing)} missing or '
              'empty; see data/README.md for the layout (or pass '
              '--data-root)', file=sys.stderr)
        return 2
    if n_err:
        print(f'\nRESULT: FAIL - {n_err} problems in {len(files)} files '
              f'({n_warn} warnings)')
        return 1
    print(f'\nRESULT: OK - {sum(r["num_pairs"] for r in reports)} pairs, '
          f'{n_warn} warnings')
    return 0


if __name__ == '__main__':
    sys.exit(main())
