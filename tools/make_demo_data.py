#!/usr/bin/env python
"""Generate the embedded demo dataset (COCO-Stuff164k layout) under data/demo.

The data are a deterministic function of the seed and the counts, so every
machine gets the same files; running it twice does nothing the second time.
"""
import argparse
import sys

from segreg.datasets.demo_data import (DEMO_CLASSES, class_frequencies,
                                       generate_demo_dataset)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='data/demo', help='output root')
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 128),
                        metavar=('H', 'W'))
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite files even if the folder is up to date')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    meta = generate_demo_dataset(
        args.out, args.num_train, args.num_val, args.seed, tuple(args.size),
        overwrite=args.overwrite)
    freqs = class_frequencies(meta)
    print(f'demo data in {args.out}: {args.num_train} train / '
          f'{args.num_val} val images, {len(DEMO_CLASSES)} classes')
    for name, frac in sorted(freqs.items(), key=lambda kv: -kv[1]):
        print(f'  {name:<14s} {100 * frac:7.3f}% of train pixels')
    return 0


if __name__ == '__main__':
    sys.exit(main())
