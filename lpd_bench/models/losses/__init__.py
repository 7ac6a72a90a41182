"""LPD's auxiliary losses (registered in mmseg.registry.MODELS)."""
from .diversity import PrototypeDiversityLoss
from .mask_refiner import MaskRefinerLoss

__all__ = ['PrototypeDiversityLoss', 'MaskRefinerLoss']
