"""The colour-statistics centroid rule: block features, the fit's statistics, Mahalanobis scores.

Features: the image (B, 3, H, W), BGR values 0..255 as the loader gives them, is cut into
``block_size`` x ``block_size`` pixel blocks (the last row/column of blocks is partial when H or
W is not a multiple: it holds the pixels there are). Each block gets 6 numbers, the mean and the
standard deviation (population, ddof 0) of each channel over its pixels. The feature maps are
then smoothed: each block's 6 numbers become their mean over the ``smoothing`` x ``smoothing``
blocks around it (blocks outside the image are left out of the mean). A block is *near-white*
when the mean over channels of its colour mean exceeds ``white_threshold``: the smoothed colour
mean (``white_on='smoothed'``, default: the feature the distances see, and the reviewer's
implementation behind the numbers of issue 11) or the block's own (``white_on='block'``).

Fit: one centroid per tissue class, the mean feature of every non-white block of the class's
single-label training images (pooled over blocks, so a larger image weighs more), and the pooled
within-class covariance ``sum_c sum_{x in c} (x - mu_c)(x - mu_c)^T / (N - C)`` plus
``covariance_ridge`` on the diagonal (a numerical guard: with it flat-colour images, whose
within-class covariance is zero, still give a well-defined distance). Its inverse is the
precision matrix of the Mahalanobis distance ``d_c(x) = sqrt((x - mu_c)^T P (x - mu_c))``.

Scores (C+1 channels, the last one background), per block: an allowed tissue class scores
``-d_c`` (clamped to ``-MAX_DISTANCE``), a class the gating excludes ``-2 * FAR``, background
``+FAR`` on near-white blocks and ``-FAR`` elsewhere. So the argmax is background on near-white
blocks, else the allowed class of the nearest centroid, and background when no class is allowed
(an image whose label is empty).
"""
from dataclasses import dataclass
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

NUM_FEATURES = 6  # per-channel mean and standard deviation of 3 channels
#: Background score on near-white blocks (minus it elsewhere); excluded classes score -2 * FAR.
FAR = 1e6
#: Distances are clamped below this, so that an allowed class always beats background off white.
MAX_DISTANCE = FAR / 2

DEFAULT_BLOCK_SIZE = 8
DEFAULT_SMOOTHING = 3
DEFAULT_WHITE_THRESHOLD = 225.0
DEFAULT_COVARIANCE_RIDGE = 1e-3
#: ``white_on``: which colour mean the near-white test reads (module docstring).
WHITE_ON = ('smoothed', 'block')


class ColourRuleError(ValueError):
    """The data or the settings cannot give the colour rule (e.g. a class without images)."""


@dataclass(frozen=True)
class RuleSettings:
    """The rule's constructor arguments (stored with the fit and checked when it is loaded)."""
    block_size: int = DEFAULT_BLOCK_SIZE
    smoothing: int = DEFAULT_SMOOTHING
    white_threshold: float = DEFAULT_WHITE_THRESHOLD
    white_on: str = 'smoothed'

    def __post_init__(self):
        if self.white_on not in WHITE_ON:
            raise ColourRuleError(f'white_on must be one of {WHITE_ON}, got {self.white_on!r}')
        if int(self.block_size) != self.block_size or self.block_size < 1:
            raise ColourRuleError(f'block_size must be a positive integer, got {self.block_size!r}')
        if int(self.smoothing) != self.smoothing or self.smoothing < 1 or self.smoothing % 2 == 0:
            raise ColourRuleError('smoothing must be a positive odd integer (blocks per side of '
                                  f'the smoothing window; 1: none), got {self.smoothing!r}')
        object.__setattr__(self, 'block_size', int(self.block_size))
        object.__setattr__(self, 'smoothing', int(self.smoothing))
        object.__setattr__(self, 'white_threshold', float(self.white_threshold))

    def as_tensor(self) -> Tensor:
        return torch.tensor([self.block_size, self.smoothing, self.white_threshold,
                             WHITE_ON.index(self.white_on)], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: Tensor) -> 'RuleSettings':
        block_size, smoothing, white_threshold, white_on = values.tolist()
        return cls(int(block_size), int(smoothing), white_threshold, WHITE_ON[int(white_on)])

    def as_dict(self) -> dict:
        return dict(block_size=self.block_size, smoothing=self.smoothing,
                    white_threshold=self.white_threshold, white_on=self.white_on)


def _block_sum(x: Tensor, block: int) -> Tensor:
    """Sum over non-overlapping ``block`` x ``block`` windows of (B, K, H, W), padded with zeros
    to a multiple of ``block`` (the last windows are partial)."""
    pad_h, pad_w = (-x.shape[-2]) % block, (-x.shape[-1]) % block
    x = F.pad(x, (0, pad_w, 0, pad_h))
    return F.avg_pool2d(x, block) * (block * block)


def block_features(images: Tensor, settings: RuleSettings):
    """``(features (B, 6, h, w), white (B, h, w) bool)`` of images (B, 3, H, W), values 0..255;
    h = ceil(H / block_size), w likewise. Features are in the images' channel order: mean of
    channels 0, 1, 2, then their standard deviations (module docstring)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ColourRuleError(f'expected images of shape (B, 3, H, W), got {tuple(images.shape)}')
    block = settings.block_size
    x = images.float()
    height, width = x.shape[-2:]
    count = _block_sum(x.new_ones(1, 1, height, width), block)
    mean = _block_sum(x, block) / count
    # the standard deviation from centred values (E[x^2] - E[x]^2 loses precision in float32)
    spread = mean.repeat_interleave(block, -2).repeat_interleave(block, -1)[..., :height, :width]
    std = (_block_sum((x - spread) ** 2, block) / count).sqrt()
    features = torch.cat([mean, std], dim=1)
    if settings.smoothing > 1:
        features = F.avg_pool2d(features, settings.smoothing, stride=1,
                                padding=settings.smoothing // 2, count_include_pad=False)
    colour = features[:, :3] if settings.white_on == 'smoothed' else mean
    return features, colour.mean(dim=1) > settings.white_threshold


class ClassStatistics:
    """Running sums of the fit (float64): per class the block count, the feature sum and the sum
    of outer products, from which the centroids and the pooled covariance follow."""

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)
        num = len(self.classes)
        self.blocks = torch.zeros(num, dtype=torch.int64)
        self.images = torch.zeros(num, dtype=torch.int64)
        self.sums = torch.zeros(num, NUM_FEATURES, dtype=torch.float64)
        self.outer = torch.zeros(num, NUM_FEATURES, NUM_FEATURES, dtype=torch.float64)

    def add(self, features: Tensor, white: Tensor, class_index: int) -> None:
        """Add the non-white blocks of single-label images of one class: features
        (B, 6, h, w), white (B, h, w)."""
        rows = features.permute(0, 2, 3, 1)[~white].double().cpu()  # (n, 6)
        self.blocks[class_index] += rows.shape[0]
        self.images[class_index] += features.shape[0]
        self.sums[class_index] += rows.sum(dim=0)
        self.outer[class_index] += rows.T @ rows

    def check(self) -> None:
        """Every class needs at least one non-white block of a single-label image."""
        missing = [c for c, n in zip(self.classes, self.images.tolist()) if n == 0]
        if missing:
            raise ColourRuleError(
                f'no single-label training image of class {", ".join(missing)}: the colour rule '
                'learns each class centroid from the training images whose label (the [abcd] of '
                'the file name) has that class alone')
        blank = [c for c, n in zip(self.classes, self.blocks.tolist()) if n == 0]
        if blank:
            raise ColourRuleError(
                f'the single-label training images of class {", ".join(blank)} are near-white '
                'everywhere (every block is background): no centroid can be learnt for it')
        if int(self.blocks.sum()) <= len(self.classes):
            raise ColourRuleError(f'{int(self.blocks.sum())} blocks are too few for a pooled '
                                  f'covariance of {len(self.classes)} classes')

    def centroids(self) -> Tensor:
        return self.sums / self.blocks[:, None].double()

    def pooled_covariance(self, ridge: float = DEFAULT_COVARIANCE_RIDGE) -> Tensor:
        mu = self.centroids()
        scatter = (self.outer - self.blocks[:, None, None].double()
                   * mu[:, :, None] * mu[:, None, :]).sum(dim=0)
        dof = int(self.blocks.sum()) - len(self.classes)
        covariance = scatter / dof
        covariance = (covariance + covariance.T) / 2
        return covariance + ridge * torch.eye(NUM_FEATURES, dtype=torch.float64)

    def fit(self, ridge: float = DEFAULT_COVARIANCE_RIDGE) -> Dict[str, Tensor]:
        """``{'centroids': (C, 6), 'precision': (6, 6), 'covariance': (6, 6)}`` (float64)."""
        self.check()
        covariance = self.pooled_covariance(ridge)
        try:
            torch.linalg.cholesky(covariance)
        except RuntimeError as err:
            raise ColourRuleError('the pooled within-class covariance is not positive definite '
                                  f'(eigenvalues {torch.linalg.eigvalsh(covariance).tolist()}); '
                                  'use a larger covariance_ridge') from err
        precision = torch.linalg.inv(covariance)
        return {'centroids': self.centroids(), 'precision': (precision + precision.T) / 2,
                'covariance': covariance}


def mahalanobis(features: Tensor, centroids: Tensor, precision: Tensor) -> Tensor:
    """Distances (B, C, h, w) of block features (B, 6, h, w) to each centroid (C, 6) under the
    precision matrix (6, 6)."""
    diff = features.permute(0, 2, 3, 1)[:, None] - centroids[None, :, None, None, :]
    squared = torch.einsum('bchwi,ij,bchwj->bchw', diff, precision, diff)
    return squared.clamp_min(0).sqrt()


def block_scores(distances: Tensor, white: Tensor, allowed: Tensor) -> Tensor:
    """Scores (B, C+1, h, w) from distances (B, C, h, w), white (B, h, w) and the 0/1 allowed
    classes (B, C) of the gating (module docstring)."""
    tissue = torch.where(allowed[:, :, None, None] > 0, -distances.clamp(max=MAX_DISTANCE),
                         torch.full_like(distances, -2 * FAR))
    background = torch.where(white, FAR, -FAR).to(tissue.dtype)[:, None]
    return torch.cat([tissue, background], dim=1)
