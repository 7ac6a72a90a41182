"""The public PBIP inference: LPD's fused, gated class maps, argmax over the four tissue maps."""
from dataclasses import dataclass

from torch import Tensor

from lpd_bench.models.inference import InferenceProtocol, gate_class_maps
from lpd_bench.models.segmentor import WeaklySupervisedSegmentor
from mmseg.registry import MODELS


@dataclass(frozen=True)
class TissueArgmaxProtocol(InferenceProtocol):
    """:class:`~lpd_bench.models.inference.InferenceProtocol` of a segmentor without a
    background channel: ``bg_alpha`` is unused, and the record says so (``background_channel``
    False, no ``bg_alpha``)."""

    def record(self) -> dict:
        record = super().record()
        del record['bg_alpha']
        record['background_channel'] = False
        return record


@MODELS.register_module()
class PBIPPublicSegmentor(WeaklySupervisedSegmentor):
    """:class:`~lpd_bench.models.segmentor.WeaklySupervisedSegmentor` with the public PBIP code's
    last step: the prediction is the argmax over the C gated tissue maps (same TTA, ReLU,
    min-max, label gating and stage fusion as LPD), with no background channel, so background
    (index C) is never predicted. ``seg_logits`` holds those C maps (C, H, W). Predictions
    ``pred_sem_seg_<variant>`` for ``oracle`` and ``predicted`` gating, plus the ``_crf``
    variants when ``test_cfg.crf`` is on (the public code has none: the configs turn it off).
    Same arguments as the parent.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.protocol = TissueArgmaxProtocol.from_cfg(self.test_cfg)

    def segmentation_scores(self, cams: Tensor, labels: Tensor) -> Tensor:
        """The gated class maps (B, C, H, W), without a background channel."""
        return gate_class_maps(cams, labels)
