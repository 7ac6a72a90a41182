"""Figures of the report (matplotlib/seaborn, Agg backend): ablation curves, qualitative
predictions and per-prototype activation maps, all from files stored in the run directories.

A run's snapshot step (``lpd_bench.runner.snapshots``) stores ``preds/<image>.png`` (label maps,
oracle gating) and ``prototype_maps.npz`` (stage-4 similarity maps of every prototype for one
test image: ``maps`` (C*k, h, w), ``image``, ``num_per_class``). Masks, predictions and class
names are drawn in the palette and names of the results' data set (``layout``, a
:class:`lpd_bench.data.layouts.DatasetLayout`; BCSS-WSSS's by default).
"""
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image  # noqa: E402

from ..data.bcss_meta import PALETTE  # noqa: E402
from ..data.layouts import DEFAULT_LAYOUT  # noqa: E402
from ..methods import registered_methods  # noqa: E402
from .tables import variant_label, variant_rank  # noqa: E402

PALETTE_ARRAY = np.array(PALETTE, dtype=np.uint8)


def ablation_plot(frame, group, xlabel, path, unc=None) -> bool:
    """mIoU (paper protocol, last checkpoint) against the group's values, one line per variant
    (gating, with/without CRF): the mean over seeds with its 95% bootstrap interval as error bars
    (``unc``: :class:`lpd_bench.report.uncertainty.Uncertainty`), or ± std over seeds where a
    point has no per-image data."""
    rows = frame[(frame['group'] == group) & (frame['protocol'] == 'bg_counted')
                 & (frame['checkpoint'] == 'last')].copy()
    if rows.empty:
        return False
    rows['x'] = rows['value'].astype(float)
    rows['key'] = rows['value'].map(str)  # as the intervals name the point (0, not 0.0)
    order = sorted(rows['variant'].unique(), key=variant_rank)
    stats = rows.groupby(['variant', 'x', 'key'], sort=True)['mIoU'].agg(['mean', 'std'])
    stats = stats.reset_index()
    bounds = [unc.interval('ablation', (group, key), variant, 'bg_counted') if unc else None
              for variant, key in zip(stats['variant'], stats['key'])]
    with_intervals = all(b is not None for b in bounds)
    if with_intervals:
        stats['below'] = stats['mean'] - [b['lo'] for b in bounds]
        stats['above'] = [b['hi'] for b in bounds] - stats['mean']
    else:
        stats['below'] = stats['above'] = stats['std'].fillna(0.0)
    sns.set_theme(style='whitegrid')
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    colours = sns.color_palette(n_colors=len(order))
    for colour, variant in zip(colours, order):
        line = stats[stats['variant'] == variant].sort_values('x')
        ax.errorbar(line['x'], line['mean'], yerr=[line['below'], line['above']], marker='o',
                    capsize=4, color=colour, label=variant_label(variant))
    ax.set_xticks(sorted(rows['x'].unique()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel('mIoU (%), paper protocol')
    spread = ('mean over seeds, 95% bootstrap interval over test images and seeds'
              if with_intervals else 'mean ± std over seeds: no per-image data')
    ax.set_title(f'LPD: mIoU vs {xlabel}\n({spread}, last checkpoint)', fontsize=8)
    ax.legend(fontsize=7, title='gating, CRF', title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def colorize(labels, palette=PALETTE) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) RGB in ``palette`` (BCSS-WSSS's by default)."""
    colours = PALETTE_ARRAY if palette is PALETTE else np.array(palette, dtype=np.uint8)
    return colours[np.clip(labels, 0, len(colours) - 1)]


def short_labels() -> dict:
    """Registered method -> its figure label, in table order."""
    return {spec.name: spec.short_label for spec in registered_methods()}


def qualitative_figure(run_dirs: dict, data_root, path, max_images=4,
                       layout=DEFAULT_LAYOUT) -> bool:
    """Rows: test images; columns: image, ground truth, each method's prediction, in ``layout``'s
    palette, with its class names in the legend.

    ``run_dirs`` maps method -> run directory holding ``preds/``; images shown are those every
    method saved.
    """
    preds = {m: Path(d) / 'preds' for m, d in run_dirs.items() if (Path(d) / 'preds').is_dir()}
    if not preds:
        return False
    names = sorted(set.intersection(*[{p.name for p in d.glob('*.png')} for d in preds.values()]))
    names = names[:max_images]
    if not names:
        return False
    methods = [m for m in short_labels() if m in preds]
    cols = 2 + len(methods)
    fig, axes = plt.subplots(len(names), cols, figsize=(2.1 * cols, 2.2 * len(names) + 0.5),
                             squeeze=False)
    for row, name in enumerate(names):
        panels = [np.asarray(Image.open(Path(data_root) / 'test' / 'img' / name).convert('RGB')),
                  colorize(np.asarray(Image.open(Path(data_root) / 'test' / 'mask' / name)),
                           layout.palette)]
        panels += [colorize(np.asarray(Image.open(preds[m] / name)), layout.palette)
                   for m in methods]
        titles = ['image', 'ground truth'] + [short_labels()[m] for m in methods]
        for col, (panel, title) in enumerate(zip(panels, titles)):
            axes[row, col].imshow(panel, interpolation='nearest')
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(title, fontsize=9)
        axes[row, 0].set_ylabel(Path(name).stem[-18:], fontsize=6)
    handles = [matplotlib.patches.Patch(facecolor=np.array(c) / 255, edgecolor='black', label=n)
               for c, n in zip(layout.palette, layout.classes)]
    fig.legend(handles=handles, loc='lower center', ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle('Predictions (oracle gating, seed of the first run)', fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def prototype_maps_figure(run_dirs: dict, data_root, path, layout=DEFAULT_LAYOUT) -> bool:
    """Stage-4 similarity map of every prototype, one row per (method, class present); rows
    named after ``layout``'s classes."""
    stored = {m: np.load(Path(d) / 'prototype_maps.npz') for m, d in run_dirs.items()
              if (Path(d) / 'prototype_maps.npz').is_file()}
    if not stored:
        return False
    tissues = layout.tissue_classes
    rows = []  # (method, class index, maps (k, h, w), image name)
    for method in [m for m in short_labels() if m in stored]:
        data = stored[method]
        k = int(data['num_per_class'])
        maps = data['maps'].reshape(len(tissues), k, *data['maps'].shape[-2:])
        present = data['label'] if 'label' in data else np.ones(len(tissues))
        rows += [(method, c, maps[c], str(data['image'])) for c in range(len(tissues))
                 if present[c]]
    cols = 1 + max(r[2].shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.7 * len(rows) + 0.4),
                             squeeze=False)
    for row, (method, cls, maps, image) in enumerate(rows):
        img = np.asarray(Image.open(Path(data_root) / 'test' / 'img' / image).convert('RGB'))
        axes[row, 0].imshow(img)
        axes[row, 0].set_ylabel(f'{short_labels()[method]}\n{tissues[cls]}',
                                fontsize=8)
        vmin, vmax = float(maps.min()), float(maps.max())
        for col in range(cols):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if col == 0:
                continue
            if col - 1 < len(maps):
                axes[row, col].imshow(maps[col - 1], cmap='viridis', vmin=vmin, vmax=vmax,
                                      interpolation='bilinear')
                axes[row, col].set_title(f'p{col}', fontsize=7)
            else:
                axes[row, col].axis('off')
    fig.suptitle('Stage-4 similarity map of each prototype of the classes present (LPD: '
                 'learnable, PBIP: clustered); one colour scale per row', fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
