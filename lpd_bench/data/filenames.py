"""Image-level labels in BCSS-WSSS training file names: ``<slide-region>+<index>[abcd].png``.

``a,b,c,d`` are 0/1 flags for TUM, STR, LYM, NEC (see docs/datasets.md, section 1), e.g.
``TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500+0[1101].png``. Only the last bracket group of
the base name counts; folders may contain brackets.
"""
import os
import re
from typing import Optional, Sequence

import numpy as np

from .bcss_meta import NUM_TISSUE_CLASSES, TISSUE_CLASSES

#: The last ``[...]`` group of a base name (nothing after it may contain a bracket).
_LAST_GROUP = re.compile(r'\[([^\[\]]*)\][^\[\]]*$')


def last_label_group(path) -> Optional[str]:
    """The text inside the last ``[...]`` group of the base name of ``path``, or None."""
    match = _LAST_GROUP.search(os.path.basename(os.fspath(path)))
    return None if match is None else match.group(1)


class TrainLabelError(ValueError):
    """A training file name does not carry a valid label (BCSS-WSSS ``[abcd]`` here,
    LUAD-HistoSeg ``[a b c d]`` in luad_filenames)."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{self.path}: {problem}')


def parse_train_label(path) -> np.ndarray:
    """Return the multi-hot label (4,) int64 (TUM, STR, LYM, NEC) encoded in a train file name.

    Raises:
        TrainLabelError: the name has no label group, or it is not 4 digits of 0/1 with at least
            one 1, or it is written LUAD-HistoSeg style with spaces.
    """
    name = os.path.basename(os.fspath(path))
    match = _LAST_GROUP.search(name)
    if match is None:
        raise TrainLabelError(
            path, 'no [abcd] label group in the file name (expected '
            "'<slide-region>+<index>[abcd].png', e.g. '...+0[1101].png')")
    group = match.group(1)
    shown = f'[{group}]'
    if re.fullmatch(r'\s*[01](\s+[01])+\s*', group):
        raise TrainLabelError(
            path, f'label {shown} has spaces: this looks like LUAD-HistoSeg naming '
            '([a b c d] with classes TE, NEC, LYM, TAS), not BCSS-WSSS ([abcd], no spaces, '
            f'{",".join(TISSUE_CLASSES)})')
    if len(group) != NUM_TISSUE_CLASSES:
        raise TrainLabelError(
            path, f'label {shown} has {len(group)} characters, expected '
            f'{NUM_TISSUE_CLASSES} digits ({",".join(TISSUE_CLASSES)})')
    if set(group) - {'0', '1'}:
        raise TrainLabelError(path, f'label {shown} has characters other than 0/1')
    label = np.array([int(c) for c in group], dtype=np.int64)
    if not label.any():
        raise TrainLabelError(
            path, f'label {shown} is all zero: a training patch needs at least one tissue class')
    return label


def format_train_name(stem: str, index: int, label: Sequence[int]) -> str:
    """Build a train file name ``<stem>+<index>[abcd].png``; the inverse of parse_train_label."""
    if not stem or any(c in stem for c in '[]/+'):
        raise ValueError(f'slide-region name {stem!r} must be non-empty without [ ] / +')
    if int(index) < 0:
        raise ValueError(f'patch index {index} must be >= 0')
    flags = [int(v) for v in label]
    if len(flags) != NUM_TISSUE_CLASSES or set(flags) - {0, 1} or not any(flags):
        raise ValueError(f'label {list(label)} must be {NUM_TISSUE_CLASSES} flags of 0/1, '
                         'not all zero')
    return f'{stem}+{int(index)}[{"".join(map(str, flags))}].png'
