"""How good are pseudo-masks? Their mIoU against the real masks of a split that has them (val).

The matrix and the scores are WSSSMetric's (:func:`~lpd_bench.evaluation.wsss_metric.
confusion_matrix`, :func:`~lpd_bench.evaluation.wsss_metric.protocol_scores`): one 5 x 5 confusion
matrix over the whole split, the three background protocols, mIoU over the four tissue classes,
``mIoU`` at the top the paper protocol's (``bg_counted``, background counted). Pixels a
pseudo-mask leaves unlabelled (255, below its confidence threshold) are not scored; ``coverage``
is the share of the ground truth's labelled pixels that are.
"""
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..data.layouts import get_layout
from ..data.validation import DataProblem, DatasetError, split_dir
from ..evaluation.wsss_metric import (NUM_CLASSES, PROTOCOLS, _nan_to_none, confusion_matrix,
                                      protocol_scores)
from .mask_folder import IGNORE_INDEX, read_mask


def score_mask_pairs(pairs, classes: Sequence[str]) -> dict:
    """Scores of ``pairs`` of (ground-truth mask path, pseudo-mask path) (module docstring).

    Returns ``{"num_images", "scored_pixels", "coverage", "mIoU", "results": {protocol: the
    metric's block (IoU, Dice, mIoU, mDice, FwIoU, FwIoU_tissue, confusion)}}``, NaN as None.
    """
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    labelled = 0
    count = 0
    for gt_path, mask_path in pairs:
        gt = read_mask(gt_path).astype(np.int64)
        pred = read_mask(mask_path).astype(np.int64)
        if gt.shape != pred.shape:
            raise ValueError(f'{mask_path}: pseudo-mask is {pred.shape[1]}x{pred.shape[0]}, its '
                             f'ground truth {gt_path} {gt.shape[1]}x{gt.shape[0]}')
        labelled += int((gt != IGNORE_INDEX).sum())
        gt = np.where(pred == IGNORE_INDEX, IGNORE_INDEX, gt)  # unlabelled: not scored
        total += confusion_matrix(gt, pred, str(mask_path))
        count += 1
    results = {name: protocol_scores(total, name, tuple(classes)) for name in PROTOCOLS}
    scored = int(total.sum())
    return _nan_to_none(dict(
        num_images=count, scored_pixels=scored,
        coverage=scored / labelled if labelled else None,
        mIoU=results['bg_counted']['mIoU'], results=results))


def score_pseudo_masks(mask_dir, data_root, split: str = 'val', layout=None,
                       classes: Optional[Sequence[str]] = None) -> dict:
    """Score the pseudo-masks in ``mask_dir`` against the masks of ``split`` of ``data_root``
    (``<split>/mask/<name>.png``; every ground-truth mask needs its pseudo-mask).

    Class names: ``classes``, else those of ``layout`` (a key or DatasetLayout), else BCSS-WSSS's.
    See :func:`score_mask_pairs` for the result.
    """
    if split == 'train':
        raise ValueError('the train split has no masks to score pseudo-masks against; '
                         'write and score val pseudo-masks (--split val --score)')
    gt_dir = split_dir(data_root, split) / 'mask'
    gt_paths = sorted(gt_dir.glob('*.png'))
    if not gt_paths:
        raise DatasetError([DataProblem(str(gt_dir), 'no ground-truth masks to score against')])
    mask_dir = Path(mask_dir)
    missing = [DataProblem(str(mask_dir / p.name), f'no pseudo-mask for ground truth {p}')
               for p in gt_paths if not (mask_dir / p.name).is_file()]
    if missing:
        raise DatasetError(missing, f'pseudo-masks {mask_dir}')
    names = classes or get_layout(layout or 'bcss').classes
    return score_mask_pairs([(p, mask_dir / p.name) for p in gt_paths], names)
