"""CAM's prototype source: one learnable class vector per class and backbone stage."""
from typing import List, Sequence

import torch
from torch import Tensor, nn

from mmseg.registry import MODELS

from lpd_bench.models.prototypes import PrototypeSource


@MODELS.register_module()
class StageClassVectors(PrototypeSource):
    """CAM baseline: one learnable vector per class (k of them) and stage, no projection MLP.

    Initialised like a linear classifier (normal, std 0.02); only cosine similarity is used, so
    the scale of the init does not matter beyond that.
    """

    projected = False

    def __init__(self, num_classes: int, num_per_class: int = 1,
                 stage_channels: Sequence[int] = (), **kwargs):
        super().__init__(num_classes, num_per_class, stage_channels=stage_channels, **kwargs)
        if not self.stage_channels:
            raise ValueError('StageClassVectors needs stage_channels (the head passes its '
                             'in_channels)')
        self.vectors = nn.ParameterList(
            nn.Parameter(torch.randn(self.num_prototypes, d) * 0.02) for d in self.stage_channels)

    def stage_prototypes(self) -> List[Tensor]:
        return list(self.vectors)
