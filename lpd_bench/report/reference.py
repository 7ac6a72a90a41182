"""Reference rows that need no training: the label-only predictor and the published numbers.

Label-only predictor (computed in the report from the split masks, with WSSSMetric's own
confusion-matrix code): an image's oracle label is the set of tissue classes present in its
ground-truth mask (the same labels that oracle gating multiplies the maps by). Every pixel of the
image gets the one present class that is most frequent in the *validation* masks (a dataset-level
prior over pixels; the test masks are not used for it). Background follows DESIGN.md's rule
(score (1 - max class score)^10): the chosen class scores 1, so background is never predicted,
except in an image whose label is empty, where every class scores 0 and every pixel is BG.
It shows what oracle gating alone is worth; it is listed under oracle gating only.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..data.bcss_meta import BACKGROUND_INDEX, NUM_TISSUE_CLASSES, VAL_SPLIT_NAMES
from .tables import SCORES

#: DESIGN.md section 6 (BCSS-WSSS test, %): (method, mIoU, mDice, source).
PUBLISHED = (
    ('LPD', 71.96, 83.56, 'LPD paper, abstract'),
    ('PBIP', 69.42, 81.84, 'implied by the LPD abstract (+2.54 mIoU, +1.72 mDice over PBIP)'),
    ('PBIP', 69.03, 82.84, 'third-party retraining, one protocol'),
    ('CAM', 63.32, 77.29, 'third-party retraining, one protocol'),
    ('TPRO', 65.50, 78.90, 'third-party retraining, one protocol'),
    ('TPRO', 65.64, None, 'reprinted by later papers'),
    ('MLPS', 62.55, None, 'reprinted by later papers'),
    ('OEEM', 62.37, None, 'reprinted by later papers'),
)


def published_table() -> pd.DataFrame:
    return pd.DataFrame(PUBLISHED, columns=['Method', 'mIoU', 'mDice', 'Source'])


def read_mask(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def split_masks(data_root, split):
    """Sorted mask files of a split (``val`` accepts ``valid/``)."""
    names = VAL_SPLIT_NAMES if split == 'val' else (split, )
    for name in names:
        folder = Path(data_root) / name / 'mask'
        if folder.is_dir():
            return sorted(folder.glob('*.png'))
    raise FileNotFoundError(f'{data_root}: no {"/".join(names)}/mask/ folder with the '
                            f'{split} masks')


def class_prior(mask_paths) -> np.ndarray:
    """Tissue classes ordered from most to least frequent pixel count over ``mask_paths``."""
    counts = np.zeros(NUM_TISSUE_CLASSES, dtype=np.int64)
    for path in mask_paths:
        mask = read_mask(path)
        counts += np.bincount(mask[mask < NUM_TISSUE_CLASSES].ravel(),
                              minlength=NUM_TISSUE_CLASSES)
    return np.argsort(-counts, kind='stable')


def label_only_prediction(mask, ranking) -> np.ndarray:
    """The label-only prediction of one mask (module docstring)."""
    present = set(np.unique(mask[mask < NUM_TISSUE_CLASSES]).tolist())
    chosen = next((c for c in ranking if c in present), BACKGROUND_INDEX)
    return np.full(mask.shape, chosen, dtype=np.int64)


def label_only_scores(data_root) -> pd.DataFrame:
    """Scores of the label-only predictor on the test split, in ``mean_std``'s layout."""
    from ..evaluation.wsss_metric import PROTOCOLS, confusion_matrix, protocol_scores
    ranking = class_prior(split_masks(data_root, 'val'))
    total = 0
    for path in split_masks(data_root, 'test'):
        mask = read_mask(path)
        total = total + confusion_matrix(mask, label_only_prediction(mask, ranking), str(path))
    rows = []
    for protocol in PROTOCOLS:
        scores = protocol_scores(total, protocol)
        values = {**{c: scores['IoU'][c] for c in SCORES[:NUM_TISSUE_CLASSES]},
                  **{k: scores[k] for k in ('mIoU', 'mDice', 'FwIoU')}}
        row = {'gating': 'oracle', 'protocol': protocol, 'method': 'label_only', 'seeds': 0}
        row.update({f'{k}_mean': v for k, v in values.items()})
        row.update({f'{k}_std': np.nan for k in values})
        rows.append(row)
    return pd.DataFrame(rows)
