"""BCSS-WSSS data: file-name labels, dataset, transforms, synthetic stand-in, checks.

Importing this package registers BCSSWSSSDataset, PackWSSSInputs and RandomRotate90 in mmseg.
"""
from .bcss_dataset import BCSSWSSSDataset
from .transforms import PackWSSSInputs, RandomRotate90

__all__ = ['BCSSWSSSDataset', 'PackWSSSInputs', 'RandomRotate90']
