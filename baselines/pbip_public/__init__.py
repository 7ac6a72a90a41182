"""PBIP as its public stage-1 code does it (``pbip_public``): the PBIP-style baseline's frozen
k-means bank (stage A of :mod:`baselines.pbip`) trained and tested the public code's way.

Importing registers, in mmseg's ``MODELS``: :class:`PBIPPublicHead` (unnormalised projected
bank rows), :class:`PBIPPublicRefinerLoss` (min-max cut-out images, one batch InfoNCE ratio) and
:class:`PBIPPublicSegmentor` (argmax over the four tissue maps, no background channel).
See README.md.
"""
from .head import PBIPPublicHead
from .refiner import (PBIPPublicRefinerLoss, batch_info_nce_background,
                      batch_info_nce_foreground, minmax_per_image_channel)
from .segmentor import PBIPPublicSegmentor, TissueArgmaxProtocol

__all__ = ['PBIPPublicHead', 'PBIPPublicRefinerLoss', 'PBIPPublicSegmentor',
           'TissueArgmaxProtocol', 'batch_info_nce_background', 'batch_info_nce_foreground',
           'minmax_per_image_channel']
