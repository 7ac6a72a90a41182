"""Baseline methods, registered into mmseg registries on import.

CAM needs no code of its own (``StageClassVectors`` in lpd_bench, see configs/cam_*.py);
PBIP's clustered prototypes and bank builder live in :mod:`baselines.pbip`.
"""
from . import pbip  # noqa: F401  (registers ClusteredPrototypes)
