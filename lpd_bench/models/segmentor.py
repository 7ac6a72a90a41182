"""WeaklySupervisedSegmentor: backbone + PrototypeHead, trained from image-level labels only.

``predict`` runs the paper's inference protocol (:mod:`lpd_bench.models.inference`): all TTA views
in one batched backbone forward (or chunks of ``test_cfg.max_views_per_forward`` images), fused
class maps resized to each image's ``ori_shape``, both gatings and, with ``test_cfg.crf``, DenseCRF
(:mod:`lpd_bench.models.crf`) on every image and gating of the batch at once, in a worker pool.
Each returned SegDataSample holds one prediction per variant, ``pred_sem_seg_<variant>`` for
variant ``oracle``, ``predicted`` (no CRF) and, with ``crf=True``, ``oracle_crf``,
``predicted_crf``; ``seg_logits`` (C+1, H, W scores of the configured gating, after the CRF when
``crf=True``) and ``pred_sem_seg`` (its argmax); and metainfo ``protocol``. Without
``metainfo['img_label']`` only the predicted gating is available (``gating='predicted'``).
``set_predict_gatings`` restricts ``predict`` to some gatings (the pseudo-mask step of the second
stage needs the oracle one only; default: all).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from .crf import run_dense_crf
from .inference import (GATINGS, InferenceProtocol, add_background, fuse_stage_maps,
                        gate_class_maps, merge_views, tta_views, upsample_maps)
from .prototype_head import image_labels


def unpad_maps(maps: Tensor, meta: dict) -> Tensor:
    """Remove the data preprocessor's padding (mmseg's ``padding_size`` convention)."""
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    height, width = maps.shape[-2:]
    return maps[..., top:height - bottom, left:width - right]


def class_argmax(scores: Tensor) -> Tensor:
    """(1, H, W) index of the highest of ``scores`` (classes x H x W), the first one on ties:
    ``scores.argmax(dim=0, keepdim=True)``, computed as ``max(...).indices``, which gives the same
    indices (torch documents both as the first maximal one) and on CPU is several times faster for
    a reduction over the first of three dimensions (reports/calibration_v3.md, part 3)."""
    return scores.max(dim=0, keepdim=True).indices


def pack_predictions(data_samples: SampleList, scores: dict, configured: str,
                     record: dict) -> SampleList:
    """Write a segmentor's test output into its data samples: ``pred_sem_seg_<variant>`` (the
    argmax) for every ``scores[image index, variant]`` (classes x H x W at the original size),
    ``seg_logits`` and ``pred_sem_seg`` of the ``configured`` variant, and metainfo
    ``protocol=record``."""
    for (i, variant), variant_scores in scores.items():
        pred = PixelData(data=class_argmax(variant_scores))
        data_samples[i].set_data({f'pred_sem_seg_{variant}': pred})
        if variant == configured:
            data_samples[i].set_data({'seg_logits': PixelData(data=variant_scores),
                                      'pred_sem_seg': pred})
    for sample in data_samples:
        sample.set_metainfo(dict(protocol=record))
    return data_samples


@MODELS.register_module()
class WeaklySupervisedSegmentor(BaseSegmentor):
    """Segmentor for WSSS: ``backbone`` features -> ``decode_head`` (a PrototypeHead).

    Args:
        backbone, decode_head: module configs.
        data_preprocessor: a SegDataPreProcessor config.
        test_cfg: the inference switches (:class:`~lpd_bench.models.inference.InferenceProtocol`).
        train_cfg: unused, accepted for MMSegmentation config compatibility.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        self.num_classes = self.decode_head.num_classes
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.protocol = InferenceProtocol.from_cfg(test_cfg)
        self.predict_gatings = None  # None: every gating (set_predict_gatings)
        if len(self.protocol.fusion_weights) != self.decode_head.num_stages:
            raise ValueError(f'test_cfg.fusion_weights {self.protocol.fusion_weights} needs one '
                             f'weight per head stage ({self.decode_head.num_stages})')

    def set_crf(self, enabled: bool) -> bool:
        """Switch the CRF of ``predict`` on or off; returns the previous setting."""
        previous = self.protocol.crf
        self.protocol = self.protocol.with_crf(enabled)
        return previous

    def set_predict_gatings(self, gatings: Optional[Sequence[str]]) -> Optional[tuple]:
        """Compute only ``gatings`` ('oracle', 'predicted') in ``predict``, which must include
        the configured one (``test_cfg.gating``); None: all (the default). Returns the previous
        setting. Each gating left out saves its scores and, with the CRF, its DenseCRF."""
        if gatings is not None:
            gatings = tuple(gatings)
            unknown = sorted(set(gatings) - set(GATINGS))
            if unknown or self.protocol.gating not in gatings:
                raise ValueError(f'predict gatings {gatings}: each must be one of {GATINGS} and '
                                 f'the configured gating {self.protocol.gating!r} among them')
        previous, self.predict_gatings = self.predict_gatings, gatings
        return previous

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        return self.backbone(inputs)

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None):
        """Raw head outputs (:class:`~lpd_bench.models.prototype_head.PrototypeOutputs`)."""
        return self.decode_head(self.extract_feat(inputs))

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        return self.decode_head.loss(self.extract_feat(inputs), data_samples, inputs)

    def class_activation(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """TTA-averaged, ungated fused class maps (B, C, H, W) at input size, and image-level
        probabilities (B, C) averaged over the views."""
        protocol = self.protocol
        preprocessor = self.data_preprocessor
        normalized = getattr(preprocessor, '_enable_normalize', False)
        views, flipped = tta_views(inputs, protocol.flip, protocol.intensities,
                                   preprocessor.mean if normalized else None,
                                   preprocessor.std if normalized else None,
                                   space=protocol.intensity_space)
        stages = [i for i, w in enumerate(protocol.fusion_weights) if w > 0]
        chunk = protocol.max_views_per_forward or views.shape[0]
        fused, probs = [], []
        for part in views.split(chunk):
            class_maps, part_probs = self.decode_head.predict_class_maps(
                self.extract_feat(part), stages, map_merge=protocol.map_merge,
                gating_score=protocol.gating_score)
            fused.append(fuse_stage_maps(class_maps, protocol.fusion_weights, inputs.shape[2:],
                                         protocol.align_corners))
            probs.append(part_probs)
        probs = torch.cat(probs).view(len(flipped), -1, self.num_classes).mean(dim=0)
        return merge_views(torch.cat(fused), flipped), probs

    def segmentation_scores(self, cams: Tensor, labels: Tensor) -> Tensor:
        """The scores whose argmax is the prediction, from fused class maps (B, C, H, W) and
        gating labels (B, C): the gated maps and the background channel, (B, C+1, H, W).
        Extension point for another last step (e.g. no background channel)."""
        return add_background(gate_class_maps(cams, labels), self.protocol.bg_alpha)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Scores at input size for the configured gating (:meth:`segmentation_scores`)."""
        cams, probs = self.class_activation(inputs)
        labels = self._gating_labels(probs, batch_img_metas)[self.protocol.gating]
        return self.segmentation_scores(cams, labels)

    def _gating_labels(self, probs: Tensor, metas: List[dict]) -> dict:
        """{'predicted': (B, C), 'oracle': (B, C) when every meta has 'img_label'}."""
        labels = {'predicted': (probs > self.protocol.gating_threshold).float()}
        if all('img_label' in meta for meta in metas):
            labels['oracle'] = image_labels([SegDataSample(metainfo=m) for m in metas],
                                            self.num_classes, probs.device)
        elif self.protocol.gating == 'oracle':
            raise KeyError("test_cfg.gating='oracle' needs metainfo 'img_label' for every image "
                           "(PackWSSSInputs); use gating='predicted' for unlabelled images")
        return labels

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        if data_samples is None:
            data_samples = [
                SegDataSample(metainfo=dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:]))
                for _ in range(inputs.shape[0])
            ]
        protocol = self.protocol
        metas = [sample.metainfo for sample in data_samples]
        cams, probs = self.class_activation(inputs)
        labels = self._gating_labels(probs, metas)
        if self.predict_gatings is not None:
            labels = {gating: labels[gating] for gating in self.predict_gatings}
        scores = {}  # (image index, gating) -> (C+1, H, W) at the original size, no CRF
        for i in range(len(data_samples)):
            cam = self._to_original_size(cams[i:i + 1], metas[i], protocol.align_corners)
            for gating, gating_labels in labels.items():
                scores[i, gating] = self.segmentation_scores(cam, gating_labels[i:i + 1])[0]
        if protocol.crf:
            images = [self._crf_image(inputs[i:i + 1], meta) for i, meta in enumerate(metas)]
            keys = list(scores)
            refined = run_dense_crf([(images[i], scores[i, g].float().cpu().numpy())
                                     for i, g in keys], protocol.crf_params,
                                    protocol.crf_workers)
            for (i, gating), crf_scores in zip(keys, refined):
                scores[i, f'{gating}_crf'] = torch.from_numpy(crf_scores).to(scores[i, gating])
        configured = protocol.gating + ('_crf' if protocol.crf else '')
        return pack_predictions(data_samples, scores, configured, protocol.record())

    def _to_original_size(self, maps: Tensor, meta: dict, align_corners: bool) -> Tensor:
        """Unpad, then bilinear resize to ``meta['ori_shape']`` (when the size differs)."""
        maps = unpad_maps(maps, meta)
        if tuple(maps.shape[-2:]) == tuple(meta['ori_shape'][:2]):
            return maps
        return upsample_maps(maps, meta['ori_shape'][:2], align_corners)

    def _crf_image(self, inputs: Tensor, meta: dict) -> np.ndarray:
        """The (H, W, 3) uint8 image at original size for DenseCRF: the de-normalised input,
        in the channel order it was loaded in (BGR), resized (align_corners=False) only when the
        pipeline resized it."""
        preprocessor = self.data_preprocessor
        if getattr(preprocessor, '_enable_normalize', False):
            inputs = inputs * preprocessor.std + preprocessor.mean
        image = self._to_original_size(inputs, meta, False)[0].clamp(0, 255).round()
        return image.permute(1, 2, 0).to(torch.uint8).cpu().numpy()
