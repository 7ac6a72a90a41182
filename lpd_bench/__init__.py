"""lpd-bench: LPD and baselines for weakly supervised histopathology segmentation.

Importing this package registers its datasets, transforms, models, metrics and hooks into
MMSegmentation's registries (configs name it in ``custom_imports``).
"""
__version__ = '0.1.0'

from .deferred_imports import defer_transformers_optimizers

defer_transformers_optimizers()  # before anything imports mmengine.optim (deferred_imports.py)

from . import data, engine, evaluation, models, stage2  # noqa: F401,E402  (registration)
