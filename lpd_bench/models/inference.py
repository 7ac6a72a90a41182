"""LPD's inference path as pure tensor functions (multi-stage fusion, gating, background, TTA, CRF).

Paper protocol, per view: for each stage i with fusion weight w_i > 0, merged class maps -> ReLU
-> per-class min-max to [0, 1] -> gate by the image labels -> upsample to the output size; fuse
``sum_i w_i * map_i``. Across views: flip back and average the fused maps (as the public code
does: averaging after normalisation and fusion). Finally a background channel
``(1 - max_c cam_c) ** bg_alpha`` is appended as channel C (the mask value of background).

Gating multiplies each class map by a 0/1 image label; every later step (upsampling, weighted sum,
flip, view average) is linear per class, so gating commutes with them. The code therefore fuses
the views once, ungated (:func:`fuse_stage_maps`, :func:`merge_views`), and then gates the result
once per gating (:func:`gate_class_maps`): oracle labels (``metainfo['img_label']``) and predicted
labels (view-averaged classifier probability > ``gating_threshold``).
"""
from dataclasses import asdict, dataclass, fields
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

GATINGS = ('oracle', 'predicted')


@dataclass(frozen=True)
class InferenceProtocol:
    """The test-time switches (the segmentor's ``test_cfg``), recorded with every prediction.

    ``max_views_per_forward`` bounds the batch of one backbone forward (None: all TTA views of the
    batch at once); it changes memory use, not results, and is not part of the protocol record.
    """

    flip: bool = True
    intensities: Tuple[float, ...] = (0.9, 1.0, 1.1)
    fusion_weights: Tuple[float, ...] = (0.0, 0.3, 0.3, 0.4)
    bg_alpha: float = 10.0
    gating: str = 'oracle'
    gating_threshold: float = 0.5
    crf: bool = False
    max_views_per_forward: Optional[int] = None

    @classmethod
    def from_cfg(cls, cfg: Optional[dict]) -> 'InferenceProtocol':
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f'test_cfg has unknown keys {unknown}; '
                             f'known: {[f.name for f in fields(cls)]}')
        for key in ('intensities', 'fusion_weights'):
            if key in cfg:
                cfg[key] = tuple(float(v) for v in cfg[key])
        protocol = cls(**cfg)
        if protocol.gating not in GATINGS:
            raise ValueError(f'test_cfg.gating must be one of {GATINGS}, got {protocol.gating!r}')
        if not protocol.intensities or min(protocol.intensities) <= 0:
            raise ValueError(f'test_cfg.intensities must be positive, got {protocol.intensities}')
        if min(protocol.fusion_weights) < 0 or sum(protocol.fusion_weights) <= 0:
            raise ValueError('test_cfg.fusion_weights must be >= 0 with a positive sum, got '
                             f'{protocol.fusion_weights}')
        if protocol.crf:
            import_densecrf()
        return protocol

    def record(self) -> dict:
        """The protocol switches as stored in ``metainfo['protocol']`` and result files."""
        record = asdict(self)
        del record['max_views_per_forward']
        record['tta'] = dict(flip=record.pop('flip'), intensities=list(record.pop('intensities')))
        record['fusion_weights'] = list(self.fusion_weights)
        return record


def normalize_class_maps(maps: Tensor, eps: float = 1e-5) -> Tensor:
    """ReLU, then min-max of every (image, class) map to [0, 1]. (B, C, H, W) -> same."""
    maps = F.relu(maps)
    low = maps.amin(dim=(2, 3), keepdim=True)
    high = maps.amax(dim=(2, 3), keepdim=True)
    return (maps - low) / (high - low + eps)


def fuse_stage_maps(stage_maps: Sequence[Optional[Tensor]], weights: Sequence[float],
                    size: Tuple[int, int]) -> Tensor:
    """``sum_i w_i * upsample(normalize(stage_maps[i]), size)`` over stages with w_i > 0."""
    if len(stage_maps) != len(weights):
        raise ValueError(f'{len(weights)} fusion weights for {len(stage_maps)} stages')
    fused = None
    for i, (maps, weight) in enumerate(zip(stage_maps, weights)):
        if weight == 0:
            continue
        if maps is None:
            raise ValueError(f'stage {i + 1} has fusion weight {weight} but no class maps')
        term = weight * F.interpolate(
            normalize_class_maps(maps), size=tuple(size), mode='bilinear', align_corners=False)
        fused = term if fused is None else fused + term
    if fused is None:
        raise ValueError(f'all fusion weights are 0: {tuple(weights)}')
    return fused


def gate_class_maps(cams: Tensor, labels: Tensor) -> Tensor:
    """Zero the maps of classes absent from the image: (B, C, H, W) * (B, C)."""
    return cams * labels.to(cams.dtype)[:, :, None, None]


def add_background(cams: Tensor, bg_alpha: float) -> Tensor:
    """Append ``(1 - max_c cams) ** bg_alpha`` as channel C: (B, C, H, W) -> (B, C+1, H, W)."""
    background = (1 - cams.amax(dim=1, keepdim=True)).clamp(min=0) ** bg_alpha
    return torch.cat([cams, background], dim=1)


def tta_views(inputs: Tensor, flip: bool, intensities: Sequence[float],
              mean: Optional[Tensor] = None, std: Optional[Tensor] = None
              ) -> Tuple[Tensor, List[bool]]:
    """Stack the TTA views of a normalised batch, view-major: (V*B, 3, H, W).

    Intensity s scales the raw pixel values: for ``x = (raw - mean) / std`` the view is
    ``(s * raw - mean) / std``, without clipping (``mean``, ``std``: (3, 1, 1), both None when
    the input is not normalised). Views: [no flip, flip] x intensities.

    Returns:
        (views, flipped): ``flipped[v]`` tells whether view v is horizontally flipped.
    """
    offset = 0 if mean is None else mean / std
    views, flipped = [], []
    for is_flipped in ((False, True) if flip else (False, )):
        source = inputs.flip(dims=(3, )) if is_flipped else inputs
        for s in intensities:
            views.append(source * s + (s - 1) * offset)
            flipped.append(is_flipped)
    return torch.cat(views), flipped


def merge_views(maps: Tensor, flipped: Sequence[bool]) -> Tensor:
    """Flip flipped views back and average: (V*B, ...) view-major -> (B, ...)."""
    per_view = maps.view(len(flipped), -1, *maps.shape[1:])
    restored = [view.flip(dims=(-1, )) if f else view for view, f in zip(per_view, flipped)]
    return torch.stack(restored).mean(dim=0)


def import_densecrf():
    """The ``pydensecrf`` module (installed by ``pydensecrf2`` or ``pydensecrf``)."""
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError as err:
        raise ImportError('test_cfg.crf=True needs DenseCRF: pip install pydensecrf2') from err
    return densecrf


def dense_crf(image: np.ndarray, probs: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Refine per-pixel class probabilities with a fully connected CRF.

    Args:
        image: (H, W, 3) uint8 image.
        probs: (K, H, W) non-negative scores; normalised to sum 1 per pixel here.
    Returns:
        (K, H, W) float32 refined probabilities. Kernels as in AffinityNet's ``crf_inference``
        (Gaussian sxy 3 compat 3; bilateral sxy 80, srgb 13, compat 10).
    """
    densecrf = import_densecrf()
    num_labels, height, width = probs.shape
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise ValueError(f'dense_crf needs a ({height}, {width}, 3) uint8 image, got '
                         f'{image.shape} {image.dtype}')
    probs = probs.astype(np.float32)
    probs = probs / np.maximum(probs.sum(axis=0, keepdims=True), 1e-8)
    crf = densecrf.DenseCRF2D(width, height, num_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.clip(probs, 1e-8, 1.0)).reshape(
        num_labels, -1)))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    refined = crf.inference(iterations)
    return np.asarray(refined, dtype=np.float32).reshape(num_labels, height, width)
