"""Choosing the predicted gating's threshold on the validation split.

The predicted gating keeps class c of an image when its classifier probability (view-averaged
sigmoid of the stage-4 score, ``test_cfg.gating_score``) is above ``test_cfg.gating_threshold``.
:func:`choose_gating_threshold` picks that threshold on a grid to maximise the mean over classes
of the F1 score of these image labels against the labels of the validation masks;
:func:`collect_gating_probabilities` runs a segmentor over a dataloader to get both. The test
split must never be used for the choice (tools/choose_gating_threshold.py refuses it).
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

#: Default candidate thresholds: 0.05, 0.10, ..., 0.95.
DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def per_class_f1(probs: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) per class of the labels ``probs > threshold`` (N, C).

    A class that is neither present nor predicted in any image has no F1 (NaN).
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(bool)
    if probs.shape != labels.shape or probs.ndim != 2:
        raise ValueError(f'probs {probs.shape} and labels {labels.shape} must both be (N, C)')
    pred = probs > threshold
    tp = (pred & labels).sum(axis=0)
    errors = (pred != labels).sum(axis=0)  # FP + FN
    denominator = 2 * tp + errors
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)


def choose_gating_threshold(probs: np.ndarray, labels: np.ndarray,
                            grid: Optional[Sequence[float]] = None) -> dict:
    """The grid threshold with the highest mean per-class F1 (NaN classes left out).

    Ties go to the threshold closest to 0.5, then to the lower one.

    Returns:
        dict(threshold, mean_f1, per_class_f1 (list), grid=[{threshold, mean_f1}, ...]), NaN
        written as None (JSON-ready).
    """
    grid = DEFAULT_GRID if grid is None else tuple(float(t) for t in grid)
    if not grid:
        raise ValueError('the threshold grid is empty')
    table = []
    for threshold in grid:
        f1 = per_class_f1(probs, labels, threshold)
        mean = float(np.nanmean(f1)) if np.isfinite(f1).any() else float('nan')
        table.append(dict(threshold=threshold, mean_f1=mean, per_class_f1=f1))
    scored = [row for row in table if np.isfinite(row['mean_f1'])]
    if not scored:
        raise ValueError('no class is present or predicted in any image: F1 is undefined')
    best = max(scored, key=lambda row: (row['mean_f1'], -abs(row['threshold'] - 0.5),
                                        -row['threshold']))
    return dict(threshold=best['threshold'], mean_f1=best['mean_f1'],
                per_class_f1=[None if np.isnan(v) else float(v) for v in best['per_class_f1']],
                grid=[dict(threshold=row['threshold'],
                           mean_f1=row['mean_f1'] if np.isfinite(row['mean_f1']) else None)
                      for row in table])


@torch.no_grad()
def collect_gating_probabilities(model, dataloader) -> Tuple[np.ndarray, np.ndarray]:
    """(probs (N, C), labels (N, C)) of a WeaklySupervisedSegmentor over a dataloader.

    ``probs`` are what the predicted gating thresholds (``model.class_activation``: TTA-averaged,
    merged as ``test_cfg.gating_score``); ``labels`` are the images' ``metainfo['img_label']``
    (derived from the masks for val and test).
    """
    from .prototype_head import image_labels
    model.eval()
    all_probs, all_labels = [], []
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        _, probs = model.class_activation(data['inputs'])
        all_probs.append(probs.float().cpu().numpy())
        all_labels.append(image_labels(data['data_samples'], model.num_classes).numpy())
    if not all_probs:
        raise ValueError('the dataloader yielded no batch')
    return np.concatenate(all_probs), np.concatenate(all_labels).astype(np.int64)
