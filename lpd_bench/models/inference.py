"""LPD's inference path as pure tensor functions (multi-stage fusion, gating, background, TTA).

Paper protocol, per view: for each stage i with fusion weight w_i > 0, merged class maps -> ReLU
-> per-class min-max to [0, 1] (eps 1e-6) -> gate by the image labels -> upsample to the output
size (bilinear, align_corners=True); fuse ``sum_i w_i * map_i``. Across views: flip back and
average the fused maps (as the public code does: averaging after normalisation and fusion).
Finally a background channel ``(1 - max_c cam_c) ** bg_alpha`` is appended as channel C (the mask
value of background). With ``crf=True`` DenseCRF (:mod:`lpd_bench.models.crf`) then refines the
C+1 channels; predictions are given with and without it.

Gating multiplies each class map by a 0/1 image label; every later step (upsampling, weighted sum,
flip, view average) is linear per class, so gating commutes with them. The code therefore fuses
the views once, ungated (:func:`fuse_stage_maps`, :func:`merge_views`), and then gates the result
once per gating (:func:`gate_class_maps`): oracle labels (``metainfo['img_label']``) and predicted
labels (view-averaged classifier probability > ``gating_threshold``; the probability is the
sigmoid of the stage-4 class score merged as ``gating_score`` says).
"""
from dataclasses import asdict, dataclass, fields, replace
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .crf import dense_crf, import_densecrf, resolve_crf_params  # noqa: F401  (re-exported)

GATINGS = ('oracle', 'predicted')
#: ``test_cfg.map_merge``: how a class's k prototype maps become one class map at test.
#: 'per_pixel' (public code, ``merge_subclass_cams_to_parent``): softmax over the k maps at each
#: pixel; 'per_image': one softmax over the k pooled scores, the same weights for the whole map.
MAP_MERGES = ('per_pixel', 'per_image')
#: ``test_cfg.gating_score``: merge of the stage-4 prototype scores whose sigmoid the predicted
#: gating thresholds. 'mean' (the score the classification loss trains), 'softmax' (the
#: softmax-weighted test-time class score).
GATING_SCORES = ('mean', 'softmax')
#: ``test_cfg.intensity_space``: what the intensity TTA scales. 'normalized' (ttach Multiply on
#: the normalised tensor: view = s * x), 'raw' (the pixel values: view = (s * raw - mean) / std).
INTENSITY_SPACES = ('normalized', 'raw')
#: Switches that change speed or memory, not results: left out of the protocol record.
NOT_RECORDED = ('max_views_per_forward', 'crf_workers')


@dataclass(frozen=True)
class InferenceProtocol:
    """The test-time switches (the segmentor's ``test_cfg``), recorded with every prediction.

    Defaults are the public code's choices except ``crf`` (False here: the configs turn it on).
    ``crf_params``: a preset name of :data:`lpd_bench.models.crf.CRF_PRESETS` ('public',
    'affinitynet') or a dict of :class:`~lpd_bench.models.crf.CRFParams` fields.
    ``align_corners``: of every bilinear upsampling of maps (stage maps to the input size, fused
    maps to ``ori_shape``). ``max_views_per_forward`` bounds the batch of one backbone forward
    (None: all TTA views of the batch at once); ``crf_workers`` is the CRF's process count (None:
    the available cores, 0: in process). These two change speed and memory, not results, and
    are not part of the protocol record.
    """

    flip: bool = True
    intensities: Tuple[float, ...] = (0.9, 1.0, 1.1)
    intensity_space: str = 'normalized'
    fusion_weights: Tuple[float, ...] = (0.0, 0.3, 0.3, 0.4)
    map_merge: str = 'per_pixel'
    align_corners: bool = True
    bg_alpha: float = 10.0
    gating: str = 'oracle'
    gating_score: str = 'mean'
    gating_threshold: float = 0.5
    crf: bool = False
    crf_params: Union[str, dict] = 'public'
    crf_workers: Optional[int] = None
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
        if isinstance(cfg.get('crf_params'), dict):  # a ConfigDict -> a plain dict
            cfg['crf_params'] = {k: v for k, v in cfg['crf_params'].items()}
        protocol = cls(**cfg)
        for key, allowed in (('gating', GATINGS), ('map_merge', MAP_MERGES),
                             ('gating_score', GATING_SCORES),
                             ('intensity_space', INTENSITY_SPACES)):
            if getattr(protocol, key) not in allowed:
                raise ValueError(f'test_cfg.{key} must be one of {allowed}, got '
                                 f'{getattr(protocol, key)!r}')
        if not protocol.intensities or min(protocol.intensities) <= 0:
            raise ValueError(f'test_cfg.intensities must be positive, got {protocol.intensities}')
        if min(protocol.fusion_weights) < 0 or sum(protocol.fusion_weights) <= 0:
            raise ValueError('test_cfg.fusion_weights must be >= 0 with a positive sum, got '
                             f'{protocol.fusion_weights}')
        resolve_crf_params(protocol.crf_params)
        if protocol.crf:
            import_densecrf()
        return protocol

    def with_crf(self, enabled: bool) -> 'InferenceProtocol':
        """A copy with ``crf`` switched (validation turns it off, see NoCRFInValidationHook)."""
        return replace(self, crf=bool(enabled))

    def record(self) -> dict:
        """The protocol switches as stored in ``metainfo['protocol']`` and result files."""
        record = asdict(self)
        for key in NOT_RECORDED:
            del record[key]
        record['tta'] = dict(flip=record.pop('flip'), intensities=list(record.pop('intensities')))
        record['fusion_weights'] = list(self.fusion_weights)
        return record


def normalize_class_maps(maps: Tensor, eps: float = 1e-6) -> Tensor:
    """ReLU, then min-max of every (image, class) map to [0, 1]: ``(m - min) / (max - min + eps)``.
    (B, C, H, W) -> same."""
    maps = F.relu(maps)
    low = maps.amin(dim=(2, 3), keepdim=True)
    high = maps.amax(dim=(2, 3), keepdim=True)
    return (maps - low) / (high - low + eps)


def upsample_maps(maps: Tensor, size: Tuple[int, int], align_corners: bool = True) -> Tensor:
    """Bilinear resize of (B, C, H, W) maps to ``size`` (the protocol's ``align_corners``)."""
    return F.interpolate(maps, size=tuple(size), mode='bilinear', align_corners=align_corners)


def fuse_stage_maps(stage_maps: Sequence[Optional[Tensor]], weights: Sequence[float],
                    size: Tuple[int, int], align_corners: bool = True) -> Tensor:
    """``sum_i w_i * upsample(normalize(stage_maps[i]), size)`` over stages with w_i > 0."""
    if len(stage_maps) != len(weights):
        raise ValueError(f'{len(weights)} fusion weights for {len(stage_maps)} stages')
    fused = None
    for i, (maps, weight) in enumerate(zip(stage_maps, weights)):
        if weight == 0:
            continue
        if maps is None:
            raise ValueError(f'stage {i + 1} has fusion weight {weight} but no class maps')
        term = weight * upsample_maps(normalize_class_maps(maps), size, align_corners)
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
              mean: Optional[Tensor] = None, std: Optional[Tensor] = None,
              space: str = 'normalized') -> Tuple[Tensor, List[bool]]:
    """Stack the TTA views of a normalised batch, view-major: (V*B, 3, H, W).

    Intensity s, ``space='normalized'`` (ttach ``Multiply``, the public code): the view is
    ``s * x`` of the normalised input x (``mean``, ``std`` unused). ``space='raw'``: s scales the
    raw pixel values: for ``x = (raw - mean) / std`` the view is ``(s * raw - mean) / std``,
    without clipping (``mean``, ``std``: (3, 1, 1), both None when the input is not normalised).
    Views: [no flip, flip] x intensities.

    Returns:
        (views, flipped): ``flipped[v]`` tells whether view v is horizontally flipped.
    """
    if space not in INTENSITY_SPACES:
        raise ValueError(f'intensity space must be one of {INTENSITY_SPACES}, got {space!r}')
    offset = 0 if space == 'normalized' or mean is None else mean / std
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
