"""The two dataset layouts the benchmark reads: BCSS-WSSS and LUAD-HistoSeg.

Both put ``train/*.png`` (labels in the names, no masks), ``val|valid/{img,mask}/*.png`` and
``test/{img,mask}/*.png`` (P-mode masks, values 0..3 tissue, 4 background) in one folder; they
differ in the train names, the class order and the palette. A ``DatasetLayout`` holds what
differs, so that the dataset, the data check and the generator share one code path.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from . import bcss_meta, luad_meta
from .filenames import last_label_group, parse_train_label
from .luad_filenames import parse_luad_train_label


@dataclass(frozen=True)
class DatasetLayout:
    """What tells one dataset layout from the other.

    Attributes:
        key: short name used on the command line and in manifests ('bcss', 'luad').
        title: the release's name, for messages.
        classes: tissue classes in label order, then the background (mask value 4).
        palette: RGB colour of every mask value.
        parse_train_label: train file name -> multi-hot (4,) int64; raises TrainLabelError.
        train_name_pattern: the train naming, for messages.
    """
    key: str
    title: str
    classes: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]
    parse_train_label: Callable[[str], np.ndarray]
    train_name_pattern: str

    @property
    def tissue_classes(self) -> Tuple[str, ...]:
        return self.classes[:-1]

    def metainfo(self) -> dict:
        """mmseg dataset METAINFO: class names and palette."""
        return dict(classes=self.classes, palette=[list(rgb) for rgb in self.palette])


BCSS = DatasetLayout(
    key='bcss', title='BCSS-WSSS', classes=bcss_meta.ALL_CLASSES, palette=bcss_meta.PALETTE,
    parse_train_label=parse_train_label, train_name_pattern='<slide-region>+<index>[abcd].png')
LUAD = DatasetLayout(
    key='luad', title='LUAD-HistoSeg', classes=luad_meta.ALL_CLASSES, palette=luad_meta.PALETTE,
    parse_train_label=parse_luad_train_label,
    train_name_pattern='<patient>-<x>-<y>-[a b c d].png')
#: Every layout by key; BCSS-WSSS is the default wherever a layout cannot be told.
LAYOUTS = {layout.key: layout for layout in (BCSS, LUAD)}
DEFAULT_LAYOUT = BCSS


def get_layout(layout) -> DatasetLayout:
    """The DatasetLayout of a key ('bcss', 'luad') or the layout itself."""
    if isinstance(layout, DatasetLayout):
        return layout
    if layout not in LAYOUTS:
        raise ValueError(f'unknown dataset layout {layout!r}; expected one of {list(LAYOUTS)}')
    return LAYOUTS[layout]


def naming_of(path) -> Optional[DatasetLayout]:
    """The layout whose train naming ``path`` is written in, from its last ``[...]`` group:
    LUAD-HistoSeg if the group has white space (``[1 0 0 1]``), BCSS-WSSS if not (``[1001]``);
    None without a group. Says nothing about the label being valid (the parsers do)."""
    group = last_label_group(path)
    if group is None:
        return None
    return LUAD if any(c.isspace() for c in group) else BCSS
