"""CAM baseline: LPD's backbone, head and inference with one class vector per class and stage
(``StageClassVectors``, k=1), no projection MLP, the classification loss only. See README.md."""
from .stage_class_vectors import StageClassVectors

__all__ = ['StageClassVectors']
