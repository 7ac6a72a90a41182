"""BCSSWSSSDataset: BCSS-WSSS (or its synthetic stand-in) as an mmseg dataset.

Classes TUM, STR, LYM, NEC (+ BG 4), train names ``<slide-region>+<index>[abcd].png``; the
loading is layout_dataset.LayoutDataset's. See ARCHITECTURE.md "Data contract".
"""
from mmseg.registry import DATASETS

from .layout_dataset import LayoutDataset
from .layouts import BCSS


@DATASETS.register_module()
class BCSSWSSSDataset(LayoutDataset):
    """BCSS-WSSS split ``train``, ``val`` (folder ``val/`` or ``valid/``) or ``test``.

    Args: as ``LayoutDataset`` (data_root None: the default synthetic set).
    """
    LAYOUT = BCSS
    METAINFO = BCSS.metainfo()
