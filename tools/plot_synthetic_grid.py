"""Plot a grid of synthetic patches with their masks: ``python tools/plot_synthetic_grid.py``.

Writes reports/synthetic_grid.png (version 2: train-split patches of the default seed, masks in
the BCSS-WSSS palette, image-level labels in the titles). ``--version 3 [--difficulty D]`` writes
reports/synthetic_grid_v3.png: a first row with one swatch of every sub-morphology (same stain,
the difficulty's look-alike strength), then patches with their mask and sub-morphology map.
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lpd_bench.data.bcss_meta import PALETTE, TISSUE_CLASSES  # noqa: E402
from lpd_bench.data import synthetic_v3  # noqa: E402
from lpd_bench.data.synthetic import (DEFAULT_PATCH_SIZE, DEFAULT_SEED,  # noqa: E402
                                      DEFAULT_SPLIT_SIZES, SPLIT_SIZES, generate_patch,
                                      generate_patch_v3, mask_label, split_slides)

#: Colours of the sub-morphology maps: three shades of each class's hue (dark, mid, light).
SUB_COLOURS = np.array([
    (255, 255, 255),
    (150, 0, 0), (255, 70, 40), (255, 170, 150),
    (0, 110, 0), (60, 210, 60), (170, 255, 150),
    (0, 0, 150), (60, 110, 255), (150, 200, 255),
    (90, 0, 140), (170, 60, 255), (220, 170, 255),
], np.uint8)


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


def _swatch(ax, c: int, j: int, knobs, size: int = 128) -> None:
    """One sub-morphology alone (fixed stain, look-alike strength of ``knobs``)."""
    rng = np.random.default_rng([c, j, 11])
    texture = synthetic_v3.TEXTURES[c][j]
    h, e = synthetic_v3.lookalike(*(np.asarray(t, np.float32) for t in texture(rng, 224)),
                                  knobs.lookalike, rng, knobs.stain_variation)
    stain = synthetic_v3.sample_stain(np.random.default_rng(0), 0.0)
    ax.imshow(synthetic_v3.render_rgb(h, e, stain, rng)[:size, :size])
    ax.set_title(f'{TISSUE_CLASSES[c]} {synthetic_v3.SUBMORPHOLOGIES[c][j]} '
                 f'(id {synthetic_v3.submorphology_id(c, j)})', fontsize=8)


def plot_grid_v3(out: Path, seed: int = DEFAULT_SEED, count: int = 12, cols: int = 4,
                 start: int = 0, knobs=None, title: str = 'default') -> None:
    """Version 3: a row of sub-morphology swatches, then ``count`` (image, mask, sub-morphology
    map) triples of the train split, ``cols`` triples per row."""
    knobs = synthetic_v3.Knobs() if knobs is None else knobs
    slides = split_slides(seed, 'train', SPLIT_SIZES[3]['train'], 3, knobs)
    palette = np.array(PALETTE, np.uint8)
    n_sub = sum(len(m) for m in synthetic_v3.SUBMORPHOLOGIES)
    width = max(3 * cols, n_sub)
    rows = 1 + -(-count // cols)
    fig, axes = plt.subplots(rows, width, figsize=(1.9 * width, 2.15 * rows))
    for ax in axes.ravel():
        ax.axis('off')
    k = 0
    for c, names in enumerate(synthetic_v3.SUBMORPHOLOGIES):
        for j in range(len(names)):
            _swatch(axes[0, k], c, j, knobs)
            k += 1
    for n in range(count):
        i = start + n
        rgb, mask, sub = generate_patch_v3(seed, 'train', i, DEFAULT_PATCH_SIZE,
                                           slides[i % len(slides)], knobs)
        row, col = 1 + n // cols, 3 * (n % cols)
        names = [c for c, f in zip(TISSUE_CLASSES, mask_label(mask)) if f]
        axes[row, col].imshow(rgb)
        axes[row, col].set_title(f'#{i} [{"+".join(names)}]', fontsize=9)
        axes[row, col + 1].imshow(palette[mask], interpolation='nearest')
        axes[row, col + 1].set_title('mask', fontsize=8)
        axes[row, col + 2].imshow(SUB_COLOURS[sub], interpolation='nearest')
        axes[row, col + 2].set_title('sub-morphology', fontsize=8)
    fig.suptitle(f'Synthetic BCSS-WSSS stand-in v3 (not real data), difficulty {title} '
                 f'({knobs.tag()}). Top row: each sub-morphology alone (one stain). Mask: TUM '
                 'red, STR green, LYM blue, NEC purple, BG white; sub-morphology map: three '
                 'shades of the class colour, in the order of the top row', fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=None,
                        help='default reports/synthetic_grid.png (v2), '
                        'reports/synthetic_grid_v3.png (v3)')
    parser.add_argument('--version', type=int, choices=(2, 3), default=2)
    parser.add_argument('--difficulty', choices=sorted(synthetic_v3.DIFFICULTIES),
                        default='default', help='version 3 knobs preset')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED)
    parser.add_argument('--count', type=int, default=12)
    parser.add_argument('--start', type=int, default=0, help='first train patch index')
    args = parser.parse_args()
    if args.version == 2:
        out = args.out or Path('reports/synthetic_grid.png')
        plot_grid(out, args.seed, args.count, start=args.start)
    else:
        out = args.out or Path('reports/synthetic_grid_v3.png')
        plot_grid_v3(out, args.seed, args.count, start=args.start,
                     knobs=synthetic_v3.DIFFICULTIES[args.difficulty], title=args.difficulty)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
