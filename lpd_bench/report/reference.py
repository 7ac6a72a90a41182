"""Reference rows that need no training: the label-only predictor and the published numbers.

Label-only predictor (computed in the report from the split masks, with WSSSMetric's own
confusion-matrix code): an image's oracle label is the set of tissue classes present in its
ground-truth mask (the same labels that oracle gating multiplies the maps by). Every pixel of the
image gets the one present class that is most frequent in the *validation* masks (a dataset-level
prior over pixels; the test masks are not used for it). Background follows the test protocol's
background channel (docs/protocol.md, section 1, step 7: score (1 - max class score)^10): the
chosen class scores 1, so background is never predicted, except in an image whose label is
empty, where every class scores 0 and every pixel is BG.
It is a FLOOR: the score that the oracle image labels give with no image content at all (one
class per image, picked by a dataset prior). It is not what oracle gating is worth to a method:
that is each method's oracle minus predicted score, the "oracle − predicted" columns of
`protocols.md`. It is listed under oracle gating only, for all three background protocols, and
CRF does not apply to it (it has no score maps to refine). Its 95% interval resamples the test
images like the methods' (no seeds: it is deterministic); it is not in the comparisons.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..data.bcss_meta import ALL_CLASSES, BACKGROUND_INDEX, NUM_TISSUE_CLASSES, VAL_SPLIT_NAMES
from .tables import MEANS, PROTOCOLS

UNSTATED = 'unstated'
#: Protocol columns of the published-numbers table, in order.
PUBLISHED_PROTOCOL_KEYS = ('gating', 'background', 'crf', 'checkpoint', 'seeds')
_THIRD_PARTY = 'third-party retraining under one protocol'
_LATER = 'later/concurrent work, as the paper reports it'


def _row(method, miou, mdice, source, note='', **protocol):
    unknown = set(protocol) - set(PUBLISHED_PROTOCOL_KEYS)
    if unknown:
        raise ValueError(f'published row {method}: unknown protocol keys {sorted(unknown)}')
    return {'method': method, 'mIoU': miou, 'mDice': mdice,
            **{k: protocol.get(k, UNSTATED) for k in PUBLISHED_PROTOCOL_KEYS},
            'source': source, 'note': note}


#: docs/protocol.md, section 8 (BCSS-WSSS test, %). The protocol columns say how the source scored
#: its number ('unstated' where the source does not say); for LPD, PBIP, TPRO and MLPS they
#: come from the public code behind the number (docs/protocol.md, section 8, last column).
PUBLISHED = (
    _row('LPD', 71.96, 83.56, 'LPD paper, abstract',
         'protocol columns from the public LPD code', gating='oracle (GT-mask labels)',
         background='counted (5x5 matrix, tissue means)', crf='yes (public parameters)',
         checkpoint='last', seeds='1'),
    _row('PBIP', 69.42, 81.84, 'implied by the LPD abstract (+2.54 mIoU, +1.72 mDice over PBIP)',
         'protocol columns from the public PBIP code', gating='oracle (GT-mask labels)',
         background='none predicted (argmax over 4 tissue maps)', crf='no'),
    _row('PBIP', 69.03, 82.84, _THIRD_PARTY),
    _row('CAM', 63.32, 77.29, _THIRD_PARTY),
    _row('TPRO', 65.50, 78.90, _THIRD_PARTY),
    _row('TPRO', 65.64, None, 'reprinted by later papers',
         'gating from the public TPRO code', gating='predicted (its own class scores)'),
    _row('MLPS', 62.55, None, 'reprinted by later papers',
         'background column from the public WSSS-Tissue/MLPS code (SSHR does the same)',
         background='GT BG copied into prediction'),
    _row('OEEM', 62.37, None, 'reprinted by later papers'),
    _row('TGAP-Net', 72.1, None, 'IEEE JBHI 2025; ' + _LATER,
         'same 4 classes; 77.4 on LUAD-HistoSeg; no public code'),
    _row('DualProtoSeg', 71.35, 83.14, '2026; ' + _LATER, 'frozen CONCH + text prototypes'),
    _row('ConStruct', 70.96, 82.83, 'MIDL 2026; ' + _LATER, 'frozen CONCH'),
    _row('PistoSeg', 70.75, None, 'AAAI 2023; ' + _LATER,
         'after retraining (original weights lost)'),
)


def published_table() -> pd.DataFrame:
    """The published numbers with their protocol columns (``PUBLISHED``)."""
    frame = pd.DataFrame(PUBLISHED)
    return frame.rename(columns={'method': 'Method', 'gating': 'Gating',
                                 'background': 'Background', 'crf': 'CRF',
                                 'checkpoint': 'Checkpoint', 'seeds': 'Seeds',
                                 'source': 'Source', 'note': 'Note'})


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


def label_only_confusions(data_root):
    """``(names, matrices)``: the test mask file names and the label-only predictor's 5x5
    confusion matrix of each (``(N, 5, 5)`` int64), as the metric's ``per_image`` holds them."""
    from ..evaluation.wsss_metric import confusion_matrix
    ranking = class_prior(split_masks(data_root, 'val'))
    names, matrices = [], []
    for path in split_masks(data_root, 'test'):
        mask = read_mask(path)
        names.append(path.name)
        matrices.append(confusion_matrix(mask, label_only_prediction(mask, ranking), str(path)))
    return names, np.stack(matrices)


def label_only_scores(data_root, confusions=None, classes=ALL_CLASSES) -> pd.DataFrame:
    """Scores of the label-only predictor on the test split under every background protocol,
    in ``mean_std``'s layout (oracle gating; CRF not applicable, ``crf`` None).
    ``confusions``: :func:`label_only_confusions`'s output, computed when not given;
    ``classes``: the data set's class names (per-class columns; BCSS-WSSS's by default)."""
    from ..evaluation.wsss_metric import protocol_scores
    _, matrices = label_only_confusions(data_root) if confusions is None else confusions
    total = matrices.sum(axis=0)
    rows = []
    for protocol in PROTOCOLS:
        scores = protocol_scores(total, protocol, tuple(classes))
        values = {c: scores['IoU'].get(c, np.nan) for c in classes}
        values.update({k: scores[k] for k in MEANS})
        row = {'gating': 'oracle', 'crf': None, 'protocol': protocol, 'method': 'label_only',
               'seeds': 0}
        row.update({f'{k}_mean': v for k, v in values.items()})
        row.update({f'{k}_std': np.nan for k in values})
        rows.append(row)
    return pd.DataFrame(rows)
