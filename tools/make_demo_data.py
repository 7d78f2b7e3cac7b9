#!/usr/bin/env python
"""Generate a synthetic dataset (COCO-Stuff164k layout), by default data/demo.

--kind scenes (default) is the embedded demo of the README; --kind aerial is
the second, differently made set used by the regularizer experiments (write
it to data/demo_aerial, which configs/_base_/datasets/demo_aerial.py reads);
--kind collage is the realistic benchmark: real photographs and object
cut-outs shipped with scikit-image (data/demo_collage, read by
configs/_base_/datasets/collage.py; sources and licences in
segreg/datasets/collage_data.py and docs/data.md).

The data are a deterministic function of the seed and the counts, so every
machine gets the same files; running it twice does nothing the second time.
"""
import argparse
import sys

from segreg.datasets.demo_data import (DEMO_KINDS, class_frequencies,
                                       generate_demo_dataset)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--kind', default='scenes', choices=sorted(DEMO_KINDS),
                        help='which synthetic set')
    parser.add_argument('--out', default=None,
                        help='output root (default: data/demo for scenes, '
                        'data/demo_aerial for aerial)')
    parser.add_argument('--num-train', type=int, default=None,
                        help='default: 600 for collage, 300 otherwise')
    parser.add_argument('--num-val', type=int, default=None,
                        help='default: 200 for collage, 100 otherwise')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, nargs=2, default=None,
                        metavar=('H', 'W'),
                        help='image size (default: 128 128 for scenes, '
                        '96 96 for aerial and collage)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite files even if the folder is up to date')
    return parser.parse_args(argv)


#: kind -> default (train, val) image counts
_COUNTS = {'collage': (600, 200)}


def main(argv=None) -> int:
    args = parse_args(argv)
    n_train, n_val = _COUNTS.get(args.kind, (300, 100))
    args.num_train = n_train if args.num_train is None else args.num_train
    args.num_val = n_val if args.num_val is None else args.num_val
    out = args.out or ('data/demo' if args.kind == 'scenes' else
                       f'data/demo_{args.kind}')
    meta = generate_demo_dataset(
        out, args.num_train, args.num_val, args.seed,
        tuple(args.size) if args.size else None, overwrite=args.overwrite,
        kind=args.kind)
    freqs = class_frequencies(meta)
    print(f'{args.kind} data in {out}: {args.num_train} train / '
          f'{args.num_val} val images, {len(freqs)} classes')
    for name, frac in sorted(freqs.items(), key=lambda kv: -kv[1]):
        print(f'  {name:<14s} {100 * frac:7.3f}% of train pixels')
    return 0


if __name__ == '__main__':
    sys.exit(main())
