"""ColourCentroidSegmentor: the colour rule (:mod:`baselines.colour_rule.rule`) as an mmseg
segmentor, fitted by ``python -m baselines.colour_rule.fit`` and never trained.

``predict`` gives, for every image, ``pred_sem_seg_oracle`` (nearest centroid among the classes
of the image label, ``metainfo['img_label']``, from the mask as for the other methods) and
``pred_sem_seg_none`` (nearest centroid among all four tissue classes: no labels at test), both
with near-white blocks as background; ``seg_logits`` (C+1, H, W: minus the distances of the
tissue classes, the background channel large on near-white blocks) and ``pred_sem_seg`` of the
configured gating (``test_cfg.gating``); and metainfo ``protocol``. No TTA, no CRF.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList

from lpd_bench.models.segmentor import pack_predictions, unpad_maps

from .rule import (DEFAULT_BLOCK_SIZE, DEFAULT_SMOOTHING, DEFAULT_WHITE_THRESHOLD,
                   NUM_FEATURES, WHITE_ON, ColourRuleError, RuleSettings, block_features,
                   block_scores, mahalanobis)

#: ``test_cfg.gating``: 'oracle' (the image label's classes) or 'none' (all tissue classes).
GATINGS = ('oracle', 'none')
METHOD = 'colour_rule'
FIT_COMMAND = 'python -m baselines.colour_rule.fit CONFIG --out FIT.pth'


@MODELS.register_module()
class ColourCentroidSegmentor(BaseSegmentor):
    """Nearest class centroid of block colour statistics, Mahalanobis distance (module docstring).

    Args:
        num_classes: tissue classes (4; background is the extra channel C).
        block_size: block side in pixels (8).
        smoothing: blocks per side of the feature smoothing window (3; 1: none).
        white_threshold: a block whose colour mean, averaged over channels, exceeds it is
            background (225).
        data_preprocessor: a SegDataPreProcessor config without normalisation (a normalising
            or channel-swapping one is undone here: the rule reads the image as loaded, BGR 0..255).
        white_on: 'smoothed' (default) or 'block': which colour mean the near-white test reads.
        test_cfg: ``gating`` ('oracle' or 'none': the variant in ``seg_logits`` / ``pred_sem_seg``);
            ``crf`` may be given, False only.
        train_cfg: unused (the segmentor is fitted, not trained).

    Buffers ``centroids`` (C, 6), ``precision`` (6, 6) and ``fit_settings`` (block size,
    smoothing, white threshold, white_on of the fit) come from the fit's checkpoint; until one
    is loaded they are NaN and ``predict`` refuses to run.
    """

    def __init__(self,
                 num_classes: int = 4,
                 block_size: int = DEFAULT_BLOCK_SIZE,
                 smoothing: int = DEFAULT_SMOOTHING,
                 white_threshold: float = DEFAULT_WHITE_THRESHOLD,
                 white_on: str = WHITE_ON[0],
                 data_preprocessor: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_classes = int(num_classes)
        self.settings = RuleSettings(block_size, smoothing, white_threshold, white_on)
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})
        unknown = sorted(set(self.test_cfg) - {'gating', 'crf'})
        if unknown:
            raise ValueError(f'test_cfg has unknown keys {unknown}; known: gating, crf')
        self.gating = self.test_cfg.get('gating', 'oracle')
        if self.gating not in GATINGS:
            raise ValueError(f'test_cfg.gating must be one of {GATINGS}, got {self.gating!r}')
        if self.test_cfg.get('crf', False):
            raise ValueError('the colour rule has no CRF (test_cfg.crf must be False)')
        nan = float('nan')
        self.register_buffer('centroids', torch.full((self.num_classes, NUM_FEATURES), nan))
        self.register_buffer('precision', torch.full((NUM_FEATURES, NUM_FEATURES), nan))
        self.register_buffer('fit_settings', torch.full((4, ), nan, dtype=torch.float64))

    # ------------------------------------------------------------------ the checkpoint's state
    def load_fit(self, centroids: Tensor, precision: Tensor) -> None:
        """Set the fitted state directly (what loading the fit's checkpoint does)."""
        self.centroids.copy_(centroids)
        self.precision.copy_(precision)
        self.fit_settings.copy_(self.settings.as_tensor())

    def check_fitted(self) -> None:
        if torch.isnan(self.centroids).any() or torch.isnan(self.precision).any():
            raise ColourRuleError(
                'ColourCentroidSegmentor has no fitted centroids: test it with the checkpoint '
                f'its fit writes ({FIT_COMMAND}; then tools/test.py CONFIG FIT.pth)')
        if not torch.equal(self.fit_settings.cpu(), self.settings.as_tensor()):
            fitted = RuleSettings.from_tensor(self.fit_settings.cpu()).as_dict()
            raise ColourRuleError(f'the checkpoint was fitted with {fitted}, this model has '
                                  f'{self.settings.as_dict()}: fit it again with this config')

    # ------------------------------------------------------------------ mmseg interface
    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        raise RuntimeError(
            'ColourCentroidSegmentor is fitted, not trained (it has no parameters): compute its '
            f'centroids with `{FIT_COMMAND}` and test that file with tools/test.py '
            '(`lpd-bench run colour_rule` does both)')

    def raw_images(self, inputs: Tensor) -> Tensor:
        """The images as loaded (BGR, 0..255), undoing what the data preprocessor did."""
        preprocessor = self.data_preprocessor
        if getattr(preprocessor, '_enable_normalize', False):
            inputs = inputs * preprocessor.std + preprocessor.mean
        if getattr(preprocessor, 'channel_conversion', False):
            inputs = inputs[:, [2, 1, 0]]
        return inputs

    def extract_feat(self, inputs: Tensor):
        """Block features (B, 6, h, w) and near-white blocks (B, h, w)."""
        return block_features(self.raw_images(inputs), self.settings)

    def block_distances(self, inputs: Tensor):
        """Mahalanobis distances (B, C, h, w) to the centroids, and near-white blocks (B, h, w)."""
        self.check_fitted()
        features, white = self.extract_feat(inputs)
        return mahalanobis(features, self.centroids.to(features),
                           self.precision.to(features)), white

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        """Minus the block distances (B, C, h, w) (``mode='tensor'``)."""
        return -self.block_distances(inputs)[0]

    def to_pixels(self, block_maps: Tensor, shape) -> Tensor:
        """Block maps (B, K, h, w) -> (B, K, H, W): each block's value on its pixels."""
        block = self.settings.block_size
        maps = block_maps.repeat_interleave(block, -2).repeat_interleave(block, -1)
        return maps[..., :shape[0], :shape[1]]

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Scores (B, C+1, H, W) at input size for the configured gating."""
        distances, white = self.block_distances(inputs)
        allowed = self.gating_labels(batch_img_metas, distances)[self.gating]
        return self.to_pixels(block_scores(distances, white, allowed), inputs.shape[2:])

    def gating_labels(self, metas: List[dict], like: Tensor) -> dict:
        """{'none': all ones (B, C), 'oracle': the image labels (B, C) when every meta has one}."""
        batch = len(metas)
        labels = {'none': like.new_ones(batch, self.num_classes)}
        if all('img_label' in meta for meta in metas):
            labels['oracle'] = torch.stack([
                torch.as_tensor(meta['img_label'], dtype=like.dtype).reshape(-1)[:self.num_classes]
                for meta in metas]).to(like.device)
        elif self.gating == 'oracle':
            raise KeyError("test_cfg.gating='oracle' needs metainfo 'img_label' for every image "
                           "(PackWSSSInputs); use gating='none' for unlabelled images")
        return labels

    def protocol_record(self) -> dict:
        """The switches recorded in ``metainfo['protocol']`` and the metric JSON."""
        return dict(method=METHOD, gating=self.gating, crf=False, **self.settings.as_dict(),
                    features='block colour mean and std per channel (BGR), smoothed',
                    distance='Mahalanobis, pooled within-class covariance',
                    background_channel='near-white blocks', tta=None)

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        if data_samples is None:
            data_samples = [
                SegDataSample(metainfo=dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:]))
                for _ in range(inputs.shape[0])
            ]
        metas = [sample.metainfo for sample in data_samples]
        distances, white = self.block_distances(inputs)
        scores = {}  # (image index, gating) -> (5, H, W) at the original size
        for gating, allowed in self.gating_labels(metas, distances).items():
            pixels = self.to_pixels(block_scores(distances, white, allowed), inputs.shape[2:])
            for i in range(len(data_samples)):
                scores[i, gating] = self._to_original_size(pixels[i:i + 1], metas[i])[0]
        return pack_predictions(data_samples, scores, self.gating, self.protocol_record())

    @staticmethod
    def _to_original_size(maps: Tensor, meta: dict) -> Tensor:
        """Unpad (mmseg's ``padding_size`` convention), then nearest resize to ``ori_shape``
        when the pipeline resized the image."""
        maps = unpad_maps(maps, meta)
        size = tuple(meta.get('ori_shape', maps.shape[-2:])[:2])
        if tuple(maps.shape[-2:]) != size:
            maps = F.interpolate(maps, size=size, mode='nearest')
        return maps


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class NotTrainedConstructor:
    """``optim_wrapper.constructor`` of the colour-rule configs: ``tools/train.py`` on them stops
    here with the way to fit the rule instead (mmengine needs an ``optim_wrapper`` in a config
    that has a ``train_dataloader``, and the fit reads the train split from there)."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        pass

    def __call__(self, model):
        raise RuntimeError(
            'this config is the colour rule, which is fitted, not trained: run '
            f'`{FIT_COMMAND}`, then `python tools/test.py CONFIG FIT.pth` '
            '(`lpd-bench run colour_rule` does both)')
