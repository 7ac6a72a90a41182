"""WSSS histopathology data (BCSS-WSSS and LUAD-HistoSeg layouts): file-name labels, datasets,
transforms, synthetic stand-in, checks.

Importing this package registers BCSSWSSSDataset, LUADHistoSegDataset, PackWSSSInputs and
RandomRotate90 in mmseg.
"""
from .bcss_dataset import BCSSWSSSDataset
from .luad_dataset import LUADHistoSegDataset
from .image_cache import CachedLoadImageFromFile
from .transforms import PackWSSSInputs, RandomRotate90

__all__ = ['BCSSWSSSDataset', 'CachedLoadImageFromFile', 'LUADHistoSegDataset', 'PackWSSSInputs',
           'RandomRotate90']
