"""PrototypeHead: LPD's per-stage prototype similarity maps, class scores and training losses.

For each backbone stage i, the prototypes (projected to the stage width d_i by a small MLP, unless
the source is unprojected) are compared with every pixel feature by scaled cosine similarity:
``sim_i = s_i * cos(f_i(x, y), p_i)`` of shape (B, C*k, H_i, W_i), one learnable scale s_i per
stage. A prototype's score is its map pooled over space (:meth:`PrototypeHead.pool_map`: the
global average by default, the global maximum with ``pooling='max'``; every score of the head, in
the losses and at test, is made by :meth:`PrototypeHead.prototype_scores`); the k prototypes of a
class are merged with per-class weights: uniform (mean) in training, ``softmax(z)`` over the
class's scores z at test (so the merged score is ``sum_j softmax(z)_j z_j``). The test-time class
MAPS are merged per pixel (:func:`merge_subclass_cams_to_parent`, the public code); the per-image
option merges them with the score weights, so that (with mean pooling) the average of a merged
class map is the merged class score.
"""
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmseg.registry import MODELS

#: ``PrototypeHead(diversity_prototypes=...)`` values.
DIVERSITY_PROTOTYPES = ('raw', 'projected')
#: ``PrototypeHead(pooling=...)`` values: how a prototype's similarity map becomes its score.
#: 'mean' (global average pooling, LPD and the public code), 'max' (global max pooling).
POOLINGS = ('mean', 'max')


class PrototypeOutputs(NamedTuple):
    """Raw head outputs; entries of stages that were not computed are None."""

    sim_maps: List[Optional[Tensor]]  # per stage (B, C*k, H_i, W_i)
    stage_prototypes: List[Optional[Tensor]]  # per stage (C*k, d_i)
    raw_prototypes: Optional[Tensor]  # (C*k, D) before projection; None for unprojected sources


def merge_weights(proto_scores: Tensor, num_classes: int, mode: str) -> Tensor:
    """Weights (B, C, k) that merge the k prototypes of each class.

    ``mode='mean'``: 1/k each (training). ``mode='softmax'``: softmax over the class's prototype
    scores (test).
    """
    grouped = proto_scores.view(proto_scores.shape[0], num_classes, -1)
    if mode == 'mean':
        return torch.full_like(grouped, 1.0 / grouped.shape[-1])
    if mode == 'softmax':
        return grouped.softmax(dim=-1)
    raise ValueError(f"merge mode must be 'mean' or 'softmax', got {mode!r}")


def merge_scores(proto_scores: Tensor, weights: Tensor) -> Tensor:
    """(B, C*k) prototype scores -> (B, C) class scores."""
    return (proto_scores.view(weights.shape) * weights).sum(dim=-1)


def merge_maps(sim_maps: Tensor, weights: Tensor) -> Tensor:
    """(B, C*k, H, W) prototype maps -> (B, C, H, W) class maps."""
    grouped = sim_maps.view(*weights.shape, *sim_maps.shape[2:])
    return (grouped * weights[..., None, None]).sum(dim=2)


def merge_subclass_cams_to_parent(sim_maps: Tensor, num_classes: int,
                                  method: str = 'max') -> Tensor:
    """(B, C*k, H, W) prototype maps -> (B, C, H, W) class maps, merged at each pixel.

    ``method='max'`` (the public code's name and default): a soft maximum,
    ``m_c(x) = sum_j softmax_j(s_cj(x)) * s_cj(x)`` with the softmax over the k maps of class c
    at pixel x, so a prototype counts where it is strong. ``method='mean'``: the plain mean.
    """
    grouped = sim_maps.view(sim_maps.shape[0], num_classes, -1, *sim_maps.shape[2:])
    if method == 'max':
        return (grouped.softmax(dim=2) * grouped).sum(dim=2)
    if method == 'mean':
        return grouped.mean(dim=2)
    raise ValueError(f"per-pixel merge method must be 'max' or 'mean', got {method!r}")


def image_labels(data_samples: Sequence, num_classes: int, device=None) -> Tensor:
    """Multi-hot image labels (B, C) float from ``data_sample.metainfo['img_label']``."""
    rows = []
    for sample in data_samples:
        if 'img_label' not in sample.metainfo:
            raise KeyError(f"data sample {sample.metainfo.get('img_path', '<no img_path>')} has "
                           "no metainfo 'img_label' (pack inputs with PackWSSSInputs)")
        label = np.asarray(sample.metainfo['img_label'], dtype=np.float32).reshape(-1)
        if label.shape != (num_classes,) or not np.isin(label, (0, 1)).all():
            raise ValueError(f"img_label of {sample.metainfo.get('img_path', '<no img_path>')} "
                             f'must be {num_classes} values in {{0, 1}}, got {label.tolist()}')
        rows.append(torch.from_numpy(label))
    return torch.stack(rows).to(device)


def init_projections(projections: nn.Module) -> None:
    """The public code's ``_init_weights`` on every Linear of ``projections``: weight from
    N(0, 0.02^2) truncated to [-2, 2] (absolute bounds, as timm's ``trunc_normal_``), bias 0."""
    for module in projections.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def current_iter() -> int:
    """The runner's current training iteration (MessageHub info 'iter', 0 when unset)."""
    return MessageHub.get_current_instance().get_info('iter', 0)


@MODELS.register_module()
class PrototypeHead(BaseModule):
    """Prototype head of LPD (and of the CAM / PBIP baselines through the prototype source).

    Args:
        in_channels: widths of the backbone stages, e.g. [64, 128, 320, 512].
        num_classes: foreground classes C.
        prototypes: config of a :class:`~lpd_bench.models.prototypes.PrototypeSource`.
        proj_hidden: hidden width of the per-stage projection MLPs.
        init_scale: initial value of each stage's learnable similarity scale.
        stage_loss_weights: weight of each stage's BCE loss; stages weighted 0 are not computed.
        loss_warmup_iters: iteration from which the diversity and refiner losses are added.
        diversity_loss, refiner_loss: loss configs (built with ``num_classes``); None = off.
        diversity_prototypes: which prototypes the diversity loss compares with the stage-4
            features. 'raw' (default, the public code): the unprojected rows of P, which needs
            P's width D to equal the stage-4 width (the paper: 512 and 512; a ValueError
            otherwise). 'projected': the stage-4 projections W_4(P) (the CPU preset, whose stage
            4 is narrower than D; also the only choice for an unprojected source).
        pooling: how a prototype's (H_i, W_i) similarity map becomes its score, in the
            classification loss, the refiner's selection and at test (:meth:`pool_map`):
            'mean' (default: global average pooling) or 'max' (global max pooling).

    The projection MLPs are initialised as the public code's ``_init_weights`` does it: weights
    from a normal of std 0.02 truncated to [-2, 2], zero biases. This happens at construction;
    ``init_weights`` (MMEngine's runner calls it after building) leaves them alone unless an
    ``init_cfg`` says otherwise, and a loaded checkpoint overrides them.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_classes: int,
                 prototypes: dict,
                 proj_hidden: int = 256,
                 init_scale: float = 1 / 0.07,
                 stage_loss_weights: Sequence[float] = (0.0, 0.1, 1.0, 1.0),
                 loss_warmup_iters: int = 0,
                 diversity_loss: Optional[dict] = None,
                 refiner_loss: Optional[dict] = None,
                 diversity_prototypes: str = 'raw',
                 pooling: str = 'mean',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if pooling not in POOLINGS:
            raise ValueError(f'PrototypeHead: pooling must be one of {POOLINGS}, got {pooling!r}')
        self.pooling = pooling
        self.in_channels = tuple(in_channels)
        self.num_classes = num_classes
        self.num_stages = len(self.in_channels)
        if len(stage_loss_weights) != self.num_stages:
            raise ValueError(f'stage_loss_weights {tuple(stage_loss_weights)} must have one '
                             f'weight per stage of in_channels {self.in_channels}')
        self.stage_loss_weights = tuple(float(w) for w in stage_loss_weights)
        self.loss_warmup_iters = loss_warmup_iters

        self.prototypes = MODELS.build(
            dict(prototypes, num_classes=num_classes, stage_channels=self.in_channels))
        if self.prototypes.projected:
            self.projections = nn.ModuleList(
                nn.Sequential(
                    nn.Linear(self.prototypes.dim, proj_hidden), nn.ReLU(inplace=True),
                    nn.Linear(proj_hidden, d)) for d in self.in_channels)
            init_projections(self.projections)
        else:
            self.projections = None
        self.logit_scales = nn.Parameter(torch.full((self.num_stages, ), float(init_scale)))

        self.diversity_prototypes = diversity_prototypes
        if diversity_loss is not None:
            self._check_diversity_prototypes()
        self.diversity_loss = (None if diversity_loss is None else MODELS.build(
            dict(diversity_loss, num_classes=num_classes)))
        if refiner_loss is not None and not self.prototypes.projected:
            raise ValueError(f'refiner_loss needs raw prototypes; {type(self.prototypes).__name__}'
                             ' is an unprojected source (set refiner_loss=None)')
        self.refiner_loss = (None if refiner_loss is None else MODELS.build(
            dict(refiner_loss, num_classes=num_classes)))

    def _check_diversity_prototypes(self) -> None:
        if self.diversity_prototypes not in DIVERSITY_PROTOTYPES:
            raise ValueError(f'PrototypeHead: diversity_prototypes must be one of '
                             f'{DIVERSITY_PROTOTYPES}, got {self.diversity_prototypes!r}')
        if self.diversity_prototypes == 'projected':
            return
        source = type(self.prototypes).__name__
        if not self.prototypes.projected:
            raise ValueError(f"PrototypeHead: diversity_prototypes='raw' needs raw prototypes; "
                             f"{source} is an unprojected source (set "
                             f"diversity_prototypes='projected')")
        if self.prototypes.dim != self.in_channels[-1]:
            raise ValueError(f"PrototypeHead: diversity_prototypes='raw' compares the raw "
                             f'prototypes ({source} dim={self.prototypes.dim}) with the stage-4 '
                             f'features (in_channels[-1]={self.in_channels[-1]}): the widths '
                             f"differ; set diversity_prototypes='projected'")

    @property
    def last_stage(self) -> int:
        return self.num_stages - 1

    def _check_feats(self, feats: Sequence[Tensor]) -> None:
        if len(feats) != self.num_stages:
            raise ValueError(f'PrototypeHead expects {self.num_stages} feature maps '
                             f'(in_channels {self.in_channels}), got {len(feats)}')

    def _stage_prototypes(self, stages: Sequence[int]) -> tuple:
        """(per-stage prototypes (C*k, d_i) of ``stages``, None elsewhere; raw prototypes)."""
        stage_protos = [None] * self.num_stages
        if self.prototypes.projected:
            raw = self.prototypes()
            for i in stages:
                stage_protos[i] = self.projections[i](raw)
        else:
            raw = None
            source = self.prototypes.stage_prototypes()
            for i in stages:
                stage_protos[i] = source[i]
        return stage_protos, raw

    def normalize_prototypes(self, protos: Tensor) -> Tensor:
        """The stage prototypes (C*k, d_i) as the similarity uses them: unit rows (cosine).
        Extension point: a subclass that returns them unchanged compares normalised pixel
        features with unnormalised prototypes (maps and pooled scores alike)."""
        return F.normalize(protos, dim=1)

    def _normalized_pair(self, i: int, feat: Tensor, protos: Tensor) -> tuple:
        if feat.shape[1] != protos.shape[1]:
            raise ValueError(f'stage {i + 1} features have {feat.shape[1]} channels, '
                             f'in_channels says {protos.shape[1]}')
        return F.normalize(feat, dim=1), self.normalize_prototypes(protos)

    def _similarity_map(self, i: int, feat: Tensor, protos: Tensor) -> Tensor:
        """(B, C*k, H_i, W_i) scaled cosine similarity of every pixel with every prototype."""
        feat, protos = self._normalized_pair(i, feat, protos)
        return self.logit_scales[i] * torch.einsum('bdhw,nd->bnhw', feat, protos)

    def forward(self, feats: Sequence[Tensor], stages: Optional[Sequence[int]] = None,
                prototype_stages: Sequence[int] = ()) -> PrototypeOutputs:
        """Similarity maps of the given stages (all by default); the stage prototypes of those
        stages and of ``prototype_stages`` (which get no map)."""
        self._check_feats(feats)
        stages = range(self.num_stages) if stages is None else stages
        stage_protos, raw = self._stage_prototypes(sorted(set(stages) | set(prototype_stages)))
        sim_maps = [None] * self.num_stages
        for i in stages:
            sim_maps[i] = self._similarity_map(i, feats[i], stage_protos[i])
        return PrototypeOutputs(sim_maps, stage_protos, raw)

    def pool_map(self, sim_maps: Tensor) -> Tensor:
        """(B, C*k, H, W) similarity maps -> (B, C*k) prototype scores: the spatial mean
        (``pooling='mean'``) or maximum (``pooling='max'``) of each map."""
        if self.pooling == 'mean':
            return sim_maps.mean(dim=(2, 3))
        return sim_maps.amax(dim=(2, 3))

    def prototype_scores(self, feats: Sequence[Tensor], out: PrototypeOutputs,
                         stages: Sequence[int]) -> dict:
        """Prototype scores (B, C*k) of ``stages``: every score of the head is made here.

        A stage whose map ``out`` holds is pooled from it (:meth:`pool_map`). Otherwise, with
        ``pooling='mean'``, the score comes from :meth:`pooled_scores` without building the map
        (the same value); with any other pooling the stage's map is built from ``feats`` and
        ``out.stage_prototypes`` and pooled (it is not kept). ``out.stage_prototypes`` must hold
        every stage of ``stages``.
        """
        scores = {}
        for i in stages:
            if out.sim_maps[i] is not None:
                scores[i] = self.pool_map(out.sim_maps[i])
            elif self.pooling == 'mean':
                scores.update(self.pooled_scores(feats, out.stage_prototypes, [i]))
            else:
                scores[i] = self.pool_map(
                    self._similarity_map(i, feats[i], out.stage_prototypes[i]))
        return scores

    def pooled_scores(self, feats: Sequence[Tensor], stage_protos: Sequence[Optional[Tensor]],
                      stages: Sequence[int]) -> dict:
        """Mean-pooled prototype scores (B, C*k) of ``stages`` without building the similarity
        maps (the shortcut of :meth:`prototype_scores`; ``pooling='mean'`` only).

        The score is the spatial mean of the map ``s_i * <f(x, y)/|f(x, y)|, p/|p|>``, which is
        linear in the normalised pixel features, so it equals ``s_i * <mean_xy f/|f|, p/|p|>``:
        one (B, d_i) x (d_i, C*k) product instead of B*C*k*H_i*W_i dot products (the same value
        up to float rounding, with the same gradients).
        """
        if self.pooling != 'mean':
            raise ValueError(f"PrototypeHead.pooled_scores is the mean-pooling shortcut; this "
                             f"head pools with {self.pooling!r} (use prototype_scores)")
        scores = {}
        for i in stages:
            feat, protos = self._normalized_pair(i, feats[i], stage_protos[i])
            scores[i] = self.logit_scales[i] * (feat.mean(dim=(2, 3)) @ protos.t())
        return scores

    def losses_active(self) -> bool:
        """Whether the warm-up is over (the diversity and refiner losses are added)."""
        return current_iter() >= self.loss_warmup_iters

    def loss(self, feats: Sequence[Tensor], data_samples: Sequence, inputs: Tensor) -> dict:
        """Losses from image-level labels only (``metainfo['img_label']``)."""
        labels = image_labels(data_samples, self.num_classes, feats[0].device)
        cls_stages = [i for i, w in enumerate(self.stage_loss_weights) if w > 0]
        extra = self.losses_active() and (self.diversity_loss is not None
                                          or self.refiner_loss is not None)
        map_stages = [self.last_stage] if extra else []  # the extra losses need stage-4 maps
        out = self.forward(feats, map_stages, prototype_stages=cls_stages)

        losses = {}
        proto_scores = self.prototype_scores(feats, out, sorted(set(cls_stages) | set(map_stages)))
        for i in cls_stages:
            weights = merge_weights(proto_scores[i], self.num_classes, 'mean')
            losses[f'loss_cls_s{i + 1}'] = self.stage_loss_weights[i] * \
                F.binary_cross_entropy_with_logits(merge_scores(proto_scores[i], weights), labels)
        if not extra:
            return losses
        last = self.last_stage
        if self.diversity_loss is not None:
            protos = (out.raw_prototypes if self.diversity_prototypes == 'raw' else
                      out.stage_prototypes[last])
            losses['loss_div'] = self.diversity_loss(feats[last], protos, out.sim_maps[last],
                                                     labels)
        if self.refiner_loss is not None:
            losses.update(
                self.refiner_loss(inputs, out.sim_maps[last], out.raw_prototypes, labels,
                                  proto_scores[last]))
        return losses

    def predict_class_maps(self, feats: Sequence[Tensor], stages: Sequence[int],
                           map_merge: str = 'per_pixel', gating_score: str = 'mean') -> tuple:
        """Test-time merged class maps and image-level probabilities.

        Args:
            map_merge: 'per_pixel' (:func:`merge_subclass_cams_to_parent`, the public code) or
                'per_image' (one softmax over the pooled scores (:meth:`pool_map`) of the
                class's k prototypes, the same weights over the whole map: :func:`merge_maps`).
            gating_score: merge of the last stage's prototype scores for the probabilities:
                'mean' (the score the classification loss trains) or 'softmax'
                (``sum_j softmax(z)_j z_j``).
        Returns:
            (class_maps, probs): ``class_maps[i]`` is (B, C, H_i, W_i) for the requested stages
            and None for the others; ``probs`` (B, C) is the sigmoid of the last stage's merged
            class score.
        """
        if map_merge not in ('per_pixel', 'per_image'):
            raise ValueError(f"map_merge must be 'per_pixel' or 'per_image', got {map_merge!r}")
        last = self.last_stage
        out = self.forward(feats, sorted(set(stages)), prototype_stages=[last])
        class_maps = [None] * self.num_stages
        for i in stages:
            sim = out.sim_maps[i]
            if map_merge == 'per_pixel':
                class_maps[i] = merge_subclass_cams_to_parent(sim, self.num_classes, 'max')
            else:
                weights = merge_weights(self.pool_map(sim), self.num_classes, 'softmax')
                class_maps[i] = merge_maps(sim, weights)
        scores = self.prototype_scores(feats, out, [last])[last]
        weights = merge_weights(scores, self.num_classes, gating_score)
        return class_maps, merge_scores(scores, weights).sigmoid()
