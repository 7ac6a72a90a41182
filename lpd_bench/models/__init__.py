"""Models of lpd-bench; importing registers them in mmseg's registries (see ARCHITECTURE.md)."""
# registration side effects:
from . import (backbone_pretraining, encoder_pretraining, frozen_encoder, losses, mit_checkpoint,  # noqa: F401
               patch_mlp_encoder)
from .inference import InferenceProtocol
from .prototype_head import PrototypeHead
from .prototypes import LearnablePrototypes, PrototypeSource
from .segmentor import WeaklySupervisedSegmentor

__all__ = [
    'InferenceProtocol', 'LearnablePrototypes', 'PrototypeHead', 'PrototypeSource',
    'WeaklySupervisedSegmentor'
]
