"""Bootstrap intervals and paired comparisons of mIoU over test images and seeds.

The scheme (docs/protocol.md, section 9):

- Data: every run's per-image 5x5 confusion matrices (the metric JSON's ``per_image``), aligned
  on the test image names. Results without them (written before the metric stored them) get no
  interval: the tables fall back to mean ± std over seeds and say "no per-image data".
- Images: ONE set of ``RESAMPLES`` = 2000 resamples of the N test images (N drawn with
  replacement, fixed seed) serves every interval and every comparison of a report, so that every
  comparison is paired image by image. For a resample and a run, the per-image matrices are
  summed with the resample's multiplicities, the background protocol is applied to the sum and
  mIoU is computed from it exactly as the metric does (confusion-summed over the images, not a
  mean of per-image scores).
- Seeds: a method's score is the mean over its seeds of that mIoU. With several seeds, every
  replicate also draws S of its S seeds with replacement (a two-way bootstrap: images x seeds), so
  the interval covers the test-image sampling AND the seed-to-seed variation; with one seed, the
  images only.
- Interval: the 2.5 and 97.5 percentiles of the 2000 replicates (percentile bootstrap, 95%).
- Paired comparison of A and B (difference A - B of the seed-mean mIoU): the same image resample
  for both sides and, over the seeds both have, the same seed draw (paired by seed; seeds only one
  side has are left out); without a common seed each side draws its own seeds. Interval: the
  percentiles of the 2000 differences. p-value (two-sided, no difference under H0) from the
  normal approximation of the bootstrap distribution, ``2 * norm.sf(|d| / sd*)`` (scipy), because
  the empirical tail fraction cannot go below 1/2000, too coarse for a Holm correction over tens
  of comparisons; the empirical two-sided fraction is kept as ``p_empirical`` for a check.
- Holm: over the family of each table (all pairs of main methods under every variant and
  background protocol; every ablation point against its group's default under every variant),
  adjusted ``p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``; significant when it is below 0.05.
"""
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..data.bcss_meta import NUM_TISSUE_CLASSES
from ..evaluation.wsss_metric import protocol_matrix

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
ALPHA = 0.05
NO_PER_IMAGE = 'no per-image data'
NUM_CLASSES = 5
#: Protocol whose tissue mIoU each protocol has: ``bg_from_gt`` removes exactly the tissue false
#: positives that ``bg_ignored`` drops, so their tissue IoUs are equal (docs/protocol.md, 5).
MIOU_PROTOCOLS = {'bg_counted': 'bg_counted', 'bg_ignored': 'bg_ignored',
                  'bg_from_gt': 'bg_ignored'}


def miou(confusion) -> np.ndarray:
    """Tissue mIoU (%) of a stack of 5x5 matrices ``(..., 5, 5)``, as the metric computes it:
    classes absent from ground truth and prediction are left out of the mean."""
    matrix = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(matrix, axis1=-2, axis2=-1)
    union = matrix.sum(-2) + matrix.sum(-1) - tp
    iou = np.divide(tp, union, out=np.full(tp.shape, np.nan), where=union > 0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # all absent: NaN
        return 100 * np.nanmean(iou[..., :NUM_TISSUE_CLASSES], axis=-1)


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (step-down; NaN entries are not in the family and stay NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m:
        order = tested[np.argsort(p[tested], kind='stable')]
        steps = (m - np.arange(m)) * p[order]
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def two_sided_p(observed, replicates):
    """(p normal approximation, p empirical) of a bootstrap distribution of a difference."""
    spread = float(np.std(replicates, ddof=1))
    if spread == 0 or not np.isfinite(spread):
        p = 1.0 if observed == 0 else 0.0
    else:
        p = float(2 * scipy_stats.norm.sf(abs(observed) / spread))
    below, above = np.sum(replicates <= 0), np.sum(replicates >= 0)
    empirical = min(1.0, 2 * (1 + min(below, above)) / (len(replicates) + 1))
    return p, empirical


class PerImageData:
    """Per-image confusion matrices of stored results, on one list of test image names.

    ``add(key, per_image)`` takes a metric JSON's ``per_image`` block; the first block sets the
    image order, later ones are reordered to it (same names) or refused (other images).
    """

    def __init__(self):
        self.names = None
        self._matrices = {}  # (key, variant) -> (N, 25) float64

    def add(self, key, per_image) -> bool:
        if not per_image or not per_image.get('names'):
            return False
        names = list(per_image['names'])
        if self.names is None:
            self.names = names
        if names == self.names:
            order = None
        elif sorted(names) == sorted(self.names) and len(set(names)) == len(names):
            position = {name: i for i, name in enumerate(names)}
            order = np.array([position[name] for name in self.names])
        else:
            warnings.warn(f'{key}: its per-image data are of other test images than the first '
                          'result\'s; left out of the intervals')
            return False
        for variant, matrices in per_image['confusion'].items():
            array = np.asarray(matrices, dtype=np.float64).reshape(len(names), -1)
            self._matrices[(key, variant)] = array if order is None else array[order]
        return True

    def all_matrices(self):
        return self._matrices.values()

    def keys(self):
        """The (key, variant) pairs held."""
        return list(self._matrices)

    def has(self, key, variant) -> bool:
        return (key, variant) in self._matrices

    def matrices(self, key, variant) -> np.ndarray:
        return self._matrices[(key, variant)]

    def __len__(self):
        return 0 if self.names is None else len(self.names)


class Bootstrap:
    """The shared image resamples and seed draws (module docstring), and per-run replicates."""

    def __init__(self, data: PerImageData, resamples=RESAMPLES, seed=SEED):
        self.data, self.resamples, self.seed = data, resamples, seed
        n = len(data)
        draws = np.random.default_rng(seed).integers(0, n, (resamples, n))
        offsets = n * np.arange(resamples)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(
            resamples, n)
        # float32 sums pixel counts exactly while every total stays below 2**24
        exact32 = n * max((m.sum(1).max() for m in data.all_matrices()), default=0) < 2 ** 24
        self.weights = counts.astype(np.float32 if exact32 else np.float64)
        self._replicates = {}

    def prepare(self, pairs, batch=64):
        """Compute the replicates of many (key, variant) pairs with one matrix product per
        ``batch`` of them (the resample weights are read once per batch, not once per run)."""
        todo = [pair for pair in dict.fromkeys(pairs)
                if pair not in self._replicates and self.data.has(*pair)]
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            stacked = np.concatenate([self.data.matrices(*pair) for pair in chunk], axis=1)
            sums = (self.weights @ stacked.astype(self.weights.dtype)).astype(np.float64)
            for i, pair in enumerate(chunk):
                block = sums[:, 25 * i:25 * (i + 1)].reshape(-1, NUM_CLASSES, NUM_CLASSES)
                self._replicates[pair] = {p: miou(protocol_matrix(block, p))
                                          for p in set(MIOU_PROTOCOLS.values())}

    def replicates(self, key, variant, protocol) -> np.ndarray:
        """mIoU of each image resample (``resamples``,) of one run, variant and protocol."""
        self.prepare([(key, variant)])
        return self._replicates[(key, variant)][MIOU_PROTOCOLS.get(protocol, protocol)]

    def observed(self, key, variant, protocol) -> float:
        total = self.data.matrices(key, variant).sum(0).reshape(NUM_CLASSES, NUM_CLASSES)
        return float(miou(protocol_matrix(total, protocol)))

    def seed_draws(self, count, stream=0) -> np.ndarray:
        """(resamples, count) indices of the seeds each replicate draws (all 0 for one seed)."""
        if count <= 1:
            return np.zeros((self.resamples, max(count, 1)), dtype=np.int64)
        rng = np.random.default_rng([self.seed, count, stream])
        return rng.integers(0, count, (self.resamples, count))

    def covers(self, runs, variant) -> bool:
        return bool(runs) and all(self.data.has(key, variant) for _, key in runs)

    def side(self, runs, variant, protocol, draws):
        """(observed seed-mean mIoU, its replicates) of ``runs`` = [(seed, key)]."""
        observed = np.mean([self.observed(key, variant, protocol) for _, key in runs])
        per_seed = np.stack([self.replicates(key, variant, protocol) for _, key in runs], axis=1)
        return float(observed), np.take_along_axis(per_seed, draws, axis=1).mean(axis=1)


@dataclass
class Interval:
    mean: float
    lo: float
    hi: float
    images: int
    seeds: int


@dataclass
class Comparison:
    difference: float
    lo: float
    hi: float
    p: float
    p_empirical: float
    images: int
    seeds: str


def _percentiles(replicates):
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.nanpercentile(replicates, [tail, 100 - tail])
    return float(lo), float(hi)


def interval(boot: Bootstrap, runs, variant, protocol):
    """The :class:`Interval` of the seed-mean mIoU of ``runs`` = [(seed, key)], None without
    per-image data."""
    runs = sorted(runs, key=lambda r: str(r[0]))
    if not boot.covers(runs, variant):
        return None
    observed, replicates = boot.side(runs, variant, protocol, boot.seed_draws(len(runs)))
    return Interval(observed, *_percentiles(replicates), len(boot.data), len(runs))


def compare(boot: Bootstrap, runs_a, variant_a, runs_b, variant_b, protocol):
    """Paired :class:`Comparison` of A - B (module docstring), None without per-image data."""
    if not (boot.covers(runs_a, variant_a) and boot.covers(runs_b, variant_b)):
        return None
    seeds_a, seeds_b = dict(runs_a), dict(runs_b)
    common = sorted(set(seeds_a) & set(seeds_b), key=str)
    if common:
        runs_a = [(s, seeds_a[s]) for s in common]
        runs_b = [(s, seeds_b[s]) for s in common]
        draws_a = draws_b = boot.seed_draws(len(common))
        seeds = f'{len(common)} paired'
    else:
        runs_a, runs_b = sorted(runs_a, key=lambda r: str(r[0])), sorted(runs_b,
                                                                          key=lambda r: str(r[0]))
        draws_a, draws_b = boot.seed_draws(len(runs_a), 0), boot.seed_draws(len(runs_b), 1)
        seeds = f'{len(runs_a)} vs {len(runs_b)} unpaired'
    observed_a, replicates_a = boot.side(runs_a, variant_a, protocol, draws_a)
    observed_b, replicates_b = boot.side(runs_b, variant_b, protocol, draws_b)
    difference, replicates = observed_a - observed_b, replicates_a - replicates_b
    return Comparison(difference, *_percentiles(replicates), *two_sided_p(difference, replicates),
                      len(boot.data), seeds)


def add_holm(comparisons: pd.DataFrame, family='family') -> pd.DataFrame:
    """``p_holm`` and ``significant`` columns, Holm within each ``family``."""
    comparisons = comparisons.copy()
    comparisons['p_holm'] = np.nan
    for _, rows in comparisons.groupby(family, sort=False):
        comparisons.loc[rows.index, 'p_holm'] = holm(rows['p'].to_numpy(dtype=float))
    comparisons['significant'] = pd.Series(  # None where not tested (no p-value)
        [None if np.isnan(p) else bool(p < ALPHA) for p in comparisons['p_holm']],
        index=comparisons.index, dtype=object)
    return comparisons
