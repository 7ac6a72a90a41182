"""Models of lpd-bench; importing registers them in mmseg's registries (see ARCHITECTURE.md)."""
from . import frozen_encoder, losses, mit_checkpoint, patch_mlp_encoder  # noqa: F401  (registration side effects)
from .inference import InferenceProtocol
from .prototype_head import PrototypeHead
from .prototypes import LearnablePrototypes, PrototypeSource
from .segmentor import WeaklySupervisedSegmentor

__all__ = [
    'InferenceProtocol', 'LearnablePrototypes', 'PrototypeHead', 'PrototypeSource',
    'WeaklySupervisedSegmentor'
]
