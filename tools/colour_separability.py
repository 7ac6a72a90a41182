"""How far colour statistics alone separate the synthetic classes, v2 against v3 difficulties.

``python tools/colour_separability.py [--settings v2 v3-easy v3-default v3-hard] [--n-train 480]
[--n-test N]`` generates the patches in memory (same pixels as ``lpd-bench data synth``) and
prints a markdown report:

- per class, the mean and std over 8-px blocks of the block's colour mean (R, G, B);
- the accuracy (balanced over the 4 tissue classes) of nearest-class-centroid classification of
  test blocks that lie inside one class: features = 8-px block colour mean and std (6 values),
  smoothed over 3 x 3 blocks, Mahalanobis distance with the pooled covariance (``centroid``), and
  with one Gaussian per class (``gauss``, a stronger colour-only classifier); centroids learnt
  from the blocks of the SINGLE-LABEL train images (label = the image's class), near-white blocks
  (mean > 225) left out;
- the mIoU (4 tissue classes, background counted, one confusion matrix over the split) of the
  whole colour rule of issue 11 on the test split: the centroid classifier per block, near-white
  blocks = background, with oracle gating (only the image's classes) and with none; and, for
  scale, a label-only rule (oracle labels, every non-white block gets the image's class that
  is most frequent in the train blocks).

Chance is 25% balanced accuracy. Numbers are on synthetic data only.
"""
import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from baselines.colour_rule.rule import RuleSettings
from baselines.colour_rule.rule import block_features as rule_block_features
from lpd_bench.data import synthetic
from lpd_bench.data.bcss_meta import BACKGROUND_INDEX, NUM_TISSUE_CLASSES, TISSUE_CLASSES
from lpd_bench.data.synthetic_v3 import DIFFICULTIES
from lpd_bench.report.stats import miou

BLOCK = 8
WHITE = 225


def settings(names):
    """(name, version, knobs) of every named setting: 'v2', 'v3-<difficulty>', optionally with
    knob overrides, e.g. 'v3-default:lookalike=1,stain_variation=0'."""
    out = []
    for name in names:
        base, _, overrides = name.partition(':')
        if base == 'v2' and not overrides:
            out.append((name, 2, None))
        elif base.startswith('v3-') and base[3:] in DIFFICULTIES:
            values = dict(item.split('=') for item in overrides.split(',') if item)
            knobs = replace(DIFFICULTIES[base[3:]], **{k: float(v) for k, v in values.items()})
            out.append((name, 3, knobs))
        else:
            raise SystemExit(f'unknown setting {name!r} (v2 or v3-{"|v3-".join(DIFFICULTIES)}'
                             '[:knob=value,...])')
    return out


def patches(version, knobs, split, count, seed=0, size=224):
    """Yield (rgb, mask) of a split, as the generator writes them."""
    slides = synthetic.split_slides(seed, split, count, version, knobs)
    for i in range(count):
        slide = slides[i % len(slides)]
        if version == 2:
            yield synthetic.generate_patch(seed, split, i, size, slide)
        else:
            yield synthetic.generate_patch_v3(seed, split, i, size, slide, knobs)[:2]


#: The colour rule's own feature settings (baselines/colour_rule), near-white read on the block.
RULE = RuleSettings(block_size=BLOCK, smoothing=3, white_threshold=WHITE, white_on='block')


def block_features(rgb):
    """(features (n, n, 6): the colour rule's smoothed block mean and std, computed by
    ``baselines.colour_rule.rule.block_features``; raw block mean (n, n, 3))."""
    n = rgb.shape[0] // BLOCK
    images = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].double()
    feats, _ = rule_block_features(images, RULE)
    blocks = rgb[:n * BLOCK, :n * BLOCK].astype(np.float64).reshape(n, BLOCK, n, BLOCK, 3)
    mean = blocks.mean((1, 3))
    return feats[0, :, :n, :n].permute(1, 2, 0).numpy(), mean


def block_labels(mask):
    """(n, n) class of each block if the block lies in one class, else -1."""
    n = mask.shape[0] // BLOCK
    m = mask[:n * BLOCK, :n * BLOCK].reshape(n, BLOCK, n, BLOCK)
    first = m[:, 0, :, 0]
    pure = (m == first[:, None, :, None]).all((1, 3))
    return np.where(pure, first.astype(int), -1)


class Gaussians:
    """Class centroids with the pooled covariance, and one covariance per class."""

    def __init__(self, feats, labels):
        self.mu = np.stack([feats[labels == c].mean(0) for c in range(NUM_TISSUE_CLASSES)])
        resid = feats - self.mu[labels]
        self.pooled = np.linalg.inv(np.cov(resid.T) + 1e-6 * np.eye(feats.shape[1]))
        self.per_class = []
        for c in range(NUM_TISSUE_CLASSES):
            cov = np.cov(feats[labels == c].T) + 1e-6 * np.eye(feats.shape[1])
            self.per_class.append((np.linalg.inv(cov), np.linalg.slogdet(cov)[1]))

    def cost(self, feats, kind='centroid'):
        """(n, 4) negative log-likelihoods up to a constant (centroid: squared Mahalanobis)."""
        d = feats[:, None, :] - self.mu[None]
        if kind == 'centroid':
            return np.einsum('nci,ij,ncj->nc', d, self.pooled, d)
        return np.stack([np.einsum('ni,ij,nj->n', d[:, c], inv, d[:, c]) + logdet
                         for c, (inv, logdet) in enumerate(self.per_class)], 1)


def balanced_accuracy(true, pred):
    return float(np.mean([(pred[true == c] == c).mean() for c in range(NUM_TISSUE_CLASSES)
                          if (true == c).any()]))


def evaluate(version, knobs, n_train, n_test):
    """Statistics of one setting (a dict)."""
    train_feats, train_labels, means = [], [], [[] for _ in range(NUM_TISSUE_CLASSES)]
    for rgb, mask in patches(version, knobs, 'train', n_train):
        present = [c for c in range(NUM_TISSUE_CLASSES) if (mask == c).any()]
        feats, mean = block_features(rgb)
        tissue = mean.mean(-1) <= WHITE
        labels = block_labels(mask)
        for c in range(NUM_TISSUE_CLASSES):
            means[c].append(mean[(labels == c) & tissue])
        if len(present) == 1:
            train_feats.append(feats[tissue])
            train_labels.append(np.full(tissue.sum(), present[0]))
    model = Gaussians(np.concatenate(train_feats), np.concatenate(train_labels))
    n_test = n_test or synthetic.SPLIT_SIZES[version]['test']
    true, pred = [], {'centroid': [], 'gauss': []}
    conf = {g: np.zeros((5, 5), np.int64) for g in ('oracle', 'none', 'label_only')}
    order = np.argsort([-np.concatenate(m).shape[0] for m in means])  # most frequent class first
    for rgb, mask in patches(version, knobs, 'test', n_test):
        feats, mean = block_features(rgb)
        n = feats.shape[0]
        flat = feats.reshape(-1, feats.shape[-1])
        white = (mean.mean(-1) > WHITE).ravel()
        labels = block_labels(mask).ravel()
        keep = (labels >= 0) & (labels != BACKGROUND_INDEX) & ~white
        cost = model.cost(flat)
        true.append(labels[keep])
        pred['centroid'].append(cost[keep].argmin(1))
        pred['gauss'].append(model.cost(flat[keep], 'gauss').argmin(1))
        present = np.array([(mask == c).any() for c in range(NUM_TISSUE_CLASSES)])
        label_only = np.zeros_like(cost)
        label_only[:, order[present[order]][0]] = -1
        for gating, allowed, c in (('oracle', present, cost), ('none', np.ones(4, bool), cost),
                                   ('label_only', present, label_only)):
            block = np.where(allowed[None], c, np.inf).argmin(1)
            block[white] = BACKGROUND_INDEX
            pix = np.kron(block.reshape(n, n), np.ones((BLOCK, BLOCK), int))
            gt = mask[:n * BLOCK, :n * BLOCK]
            conf[gating] += np.bincount(gt.ravel() * 5 + pix.ravel(), minlength=25).reshape(5, 5)
    true = np.concatenate(true)
    stats = {k: balanced_accuracy(true, np.concatenate(v)) for k, v in pred.items()}
    stats.update({f'miou_{g}': float(miou(c)) for g, c in conf.items()})
    stats['class_means'] = [np.concatenate(m) for m in means]
    stats['n_test'] = n_test
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--settings', nargs='+',
                        default=['v2'] + [f'v3-{d}' for d in DIFFICULTIES])
    parser.add_argument('--n-train', type=int, default=480)
    parser.add_argument('--n-test', type=int, default=None,
                        help="test patches (default: the version's test split size)")
    args = parser.parse_args()
    rows, class_rows = [], []
    for name, version, knobs in settings(args.settings):
        start = time.perf_counter()
        s = evaluate(version, knobs, args.n_train, args.n_test)
        took = time.perf_counter() - start
        knob_text = knobs.tag() if knobs is not None else '-'
        rows.append(f'| {name} | {knob_text} | {100 * s["centroid"]:.1f} | {100 * s["gauss"]:.1f} '
                    f'| {s["miou_oracle"]:.1f} | {s["miou_none"]:.1f} | {s["miou_label_only"]:.1f} '
                    f'| {s["n_test"]} | {took:.0f} |')
        for c, m in zip(TISSUE_CLASSES, s['class_means']):
            mu, sd = m.mean(0), m.std(0)
            class_rows.append(f'| {name} | {c} | ' + ' | '.join(
                f'{a:.0f} +- {b:.0f}' for a, b in zip(mu, sd)) + ' |')
    print('| setting | knobs | centroid bal. acc. % | gauss bal. acc. % | colour rule mIoU, '
          'oracle gating | colour rule mIoU, no gating | label-only mIoU | test patches '
          '| seconds |')
    print('|---|---|---|---|---|---|---|---|---|')
    print('\n'.join(rows))
    print()
    print('Per class, mean +- std over 8-px blocks (inside one class, not near-white) of the '
          "block's colour mean, train split:\n")
    print('| setting | class | R | G | B |')
    print('|---|---|---|---|---|')
    print('\n'.join(class_rows))


if __name__ == '__main__':
    main()
