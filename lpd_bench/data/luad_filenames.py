"""Image-level labels in LUAD-HistoSeg training file names: ``<patient>-<x>-<y>-[a b c d].png``.

``a b c d`` are 0/1 flags, separated by single spaces, for TE, NEC, LYM, TAS (see
docs/datasets.md, section 4), e.g. ``1031280-2300-27920-[1 0 0 1].png`` is TE + TAS. Only the
last bracket group of the base name counts; folders may contain brackets. Problems raise
``filenames.TrainLabelError`` (the file and what is wrong), as the BCSS-WSSS parser does.
"""
import re
from typing import Sequence

import numpy as np

from . import bcss_meta
from .filenames import TrainLabelError, last_label_group
from .luad_meta import NUM_TISSUE_CLASSES, TISSUE_CLASSES

_CLASSES = ', '.join(TISSUE_CLASSES)
_EXPECTED = f'{NUM_TISSUE_CLASSES} flags of 0/1 separated by single spaces ({_CLASSES})'


def parse_luad_train_label(path) -> np.ndarray:
    """Return the multi-hot label (4,) int64 (TE, NEC, LYM, TAS) encoded in a train file name.

    Raises:
        TrainLabelError: the name has no label group, or it is not 4 space-separated 0/1 flags
            with at least one 1, or it is written BCSS-WSSS style without spaces.
    """
    group = last_label_group(path)
    if group is None:
        raise TrainLabelError(
            path, 'no [a b c d] label group in the file name (expected '
            "'<patient>-<x>-<y>-[a b c d].png', e.g. '1031280-2300-27920-[1 0 0 1].png')")
    shown = f'[{group}]'
    flags = group.split()
    if len(flags) == 1 and len(group) > 1 and set(group) <= {'0', '1'}:
        if len(group) == bcss_meta.NUM_TISSUE_CLASSES:
            raise TrainLabelError(
                path, f'label {shown} has no spaces: this looks like BCSS-WSSS naming ([abcd] '
                f'with classes {", ".join(bcss_meta.TISSUE_CLASSES)}), not LUAD-HistoSeg '
                f'([a b c d], space-separated, {_CLASSES})')
        raise TrainLabelError(path, f'label {shown} has no spaces between its flags; '
                              f'expected {_EXPECTED}')
    if any(flag not in ('0', '1') for flag in flags):
        if all(set(flag) <= {'0', '1'} for flag in flags):
            raise TrainLabelError(path, f'label {shown} is not spaced as {_EXPECTED}')
        raise TrainLabelError(path, f'label {shown} has flags other than 0/1')
    if len(flags) != NUM_TISSUE_CLASSES:
        raise TrainLabelError(path, f'label {shown} has {len(flags)} flags, expected {_EXPECTED}')
    if group != ' '.join(flags):
        raise TrainLabelError(path, f'label {shown} is not spaced as {_EXPECTED}')
    label = np.array([int(flag) for flag in flags], dtype=np.int64)
    if not label.any():
        raise TrainLabelError(
            path, f'label {shown} is all zero: a training patch needs at least one tissue class')
    return label


def format_luad_train_name(patient: str, x: int, y: int, label: Sequence[int]) -> str:
    """Build ``<patient>-<x>-<y>-[a b c d].png``; the inverse of parse_luad_train_label."""
    if not patient or re.search(r'[\[\]/\s]', patient):
        raise ValueError(f'patient id {patient!r} must be non-empty without [ ] / or spaces')
    if int(x) < 0 or int(y) < 0:
        raise ValueError(f'patch origin ({x}, {y}) must be >= 0')
    flags = [int(v) for v in label]
    if len(flags) != NUM_TISSUE_CLASSES or set(flags) - {0, 1} or not any(flags):
        raise ValueError(f'label {list(label)} must be {NUM_TISSUE_CLASSES} flags of 0/1, '
                         'not all zero')
    return f'{patient}-{int(x)}-{int(y)}-[{" ".join(map(str, flags))}].png'
