"""Runtime fixes and hooks (see ARCHITECTURE.md). Importing registers them."""
from . import checkpoint_io  # noqa: F401  (torch>=2.6 safe globals, weights_only local loader)
from .hooks import CostRecorderHook

__all__ = ['CostRecorderHook']
