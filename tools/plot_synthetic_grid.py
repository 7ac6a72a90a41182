"""Plot a grid of synthetic patches with their masks: ``python tools/plot_synthetic_grid.py``.

Writes reports/synthetic_grid.png (train-split patches of the default seed, masks in the
BCSS-WSSS palette, image-level labels in the titles).
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lpd_bench.data.bcss_meta import PALETTE, TISSUE_CLASSES  # noqa: E402
from lpd_bench.data.synthetic import (DEFAULT_PATCH_SIZE, DEFAULT_SEED,  # noqa: E402
                                      DEFAULT_SPLIT_SIZES, generate_patch, mask_label,
                                      split_slides)


def plot_grid(out: Path, seed: int = DEFAULT_SEED, count: int = 12, cols: int = 4,
              start: int = 0) -> None:
    """Save ``count`` (image, mask) pairs of the train split, ``cols`` pairs per row."""
    slides = split_slides(seed, 'train', DEFAULT_SPLIT_SIZES['train'])
    palette = np.array(PALETTE, np.uint8)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.2 * 2 * cols, 2.45 * rows))
    for k, ax in enumerate(axes.ravel()):
        ax.axis('off')
        i = start + k // 2
        if k // 2 >= count:
            continue
        rgb, mask = generate_patch(seed, 'train', i, DEFAULT_PATCH_SIZE, slides[i % len(slides)])
        if k % 2 == 0:
            ax.imshow(rgb)
            names = [c for c, f in zip(TISSUE_CLASSES, mask_label(mask)) if f]
            ax.set_title(f'#{i} [{"+".join(names)}]', fontsize=9)
        else:
            ax.imshow(palette[mask], interpolation='nearest')
            ax.set_title('mask', fontsize=8)
    fig.suptitle('Synthetic BCSS-WSSS stand-in (not real data). Mask: TUM red, STR green, '
                 'LYM blue, NEC purple, BG white', fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('reports/synthetic_grid.png'))
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED)
    parser.add_argument('--count', type=int, default=12)
    parser.add_argument('--start', type=int, default=0, help='first train patch index')
    args = parser.parse_args()
    plot_grid(args.out, args.seed, args.count, start=args.start)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
