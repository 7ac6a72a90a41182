"""Runtime fixes and hooks (see ARCHITECTURE.md). Importing registers them."""
from . import checkpoint_io  # noqa: F401  (torch>=2.6 safe globals, weights_only local loader)
from .atomic_checkpoint import AtomicCheckpointHook
from .best_checkpoint import DelayedBestCheckpointHook
from .hooks import CostRecorderHook
from .val_crf import NoCRFInValidationHook

__all__ = ['AtomicCheckpointHook', 'CostRecorderHook', 'DelayedBestCheckpointHook',
           'NoCRFInValidationHook']
