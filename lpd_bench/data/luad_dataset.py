"""LUADHistoSegDataset: LUAD-HistoSeg (or its synthetic stand-in) as an mmseg dataset.

Classes TE, NEC, LYM, TAS (+ BG 4), train names ``<patient>-<x>-<y>-[a b c d].png``, palette of
luad_meta; the loading is layout_dataset.LayoutDataset's (docs/datasets.md, section 4).
"""
from mmseg.registry import DATASETS

from .layout_dataset import LayoutDataset
from .layouts import LUAD


@DATASETS.register_module()
class LUADHistoSegDataset(LayoutDataset):
    """LUAD-HistoSeg split ``train``, ``val`` (folder ``val/`` or ``valid/``) or ``test``.

    Args: as ``LayoutDataset`` (data_root None: the default synthetic LUAD-layout set).
    """
    LAYOUT = LUAD
    METAINFO = LUAD.metainfo()
