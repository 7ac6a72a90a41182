"""WSSSMetric: dataset-level IoU / Dice / FwIoU of BCSS-WSSS under both background protocols.

See ARCHITECTURE.md "Metric contract" and ../shared/DESIGN.md section 5.

- One 5x5 confusion matrix per gating (``oracle``, ``predicted``) over the whole split, rows =
  ground truth, columns = prediction, class order TUM, STR, LYM, NEC, BG. Ground-truth 255
  (padding) is ignored.
- ``bg_counted`` (paper protocol): the full matrix. Tissue predicted on background pixels is a
  false positive, background predicted on tissue a false negative. BG's IoU/Dice are listed for
  information; mIoU, mDice and FwIoU are over the four tissue classes only.
- ``bg_ignored`` (MLPS convention): pixels whose ground truth is BG are dropped (the BG row is
  zeroed); tissue predicted as BG still counts as a false negative. Only tissue classes are listed.
- IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN). A class absent from both ground truth
  and prediction has no score (NaN, ``null`` in JSON) and is left out of the means, with a warning.
- FwIoU = sum_c n_c * IoU_c / sum_c n_c over the four tissue classes c with a score, n_c = number
  of counted ground-truth pixels of class c (BG is not in the sum, in either protocol).
- All values are percentages.
"""
import logging
import math

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from prettytable import PrettyTable

from mmseg.registry import METRICS

from ..data.bcss_meta import ALL_CLASSES, BACKGROUND_INDEX, NUM_TISSUE_CLASSES
from ..engine.atomic_json import write_json_atomic

NUM_CLASSES = len(ALL_CLASSES)
IGNORE_INDEX = 255
PRED_PREFIX = 'pred_sem_seg_'
PROTOCOLS = ('bg_counted', 'bg_ignored')
#: Gating whose bg_counted numbers are the flat ``mIoU``/``mDice``/``FwIoU`` (paper protocol).
PAPER_GATING = 'oracle'


def confusion_matrix(gt, pred, where=''):
    """5x5 int64 matrix (rows gt, columns pred) of two label maps; gt 255 is ignored."""
    gt = np.asarray(gt).astype(np.int64, copy=False).ravel()
    pred = np.asarray(pred).astype(np.int64, copy=False).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f'{where}: ground truth has {gt.size} pixels, prediction {pred.size}')
    keep = gt != IGNORE_INDEX
    gt, pred = gt[keep], pred[keep]
    for name, labels in (('ground truth', gt), ('prediction', pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            bad = np.unique(labels[(labels < 0) | (labels >= NUM_CLASSES)])
            raise ValueError(f'{where}: {name} has labels {bad.tolist()}, expected 0..'
                             f'{NUM_CLASSES - 1} (or {IGNORE_INDEX} in ground truth)')
    counts = np.bincount(gt * NUM_CLASSES + pred, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)


def protocol_matrix(confusion, protocol):
    """The confusion matrix a protocol scores (``bg_ignored`` zeroes the BG ground-truth row)."""
    if protocol == 'bg_counted':
        return confusion
    if protocol == 'bg_ignored':
        kept = confusion.copy()
        kept[BACKGROUND_INDEX] = 0
        return kept
    raise ValueError(f'unknown protocol {protocol!r}, expected one of {PROTOCOLS}')


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan),
                     where=denominator > 0)


def _nan_weighted_mean(values, weights):
    ok = ~np.isnan(values)
    return float(np.average(values[ok], weights=weights[ok])) if weights[ok].sum() > 0 else math.nan


def protocol_scores(confusion, protocol):
    """IoU/Dice per class, mIoU/mDice/FwIoU (tissue only), in percent; NaN where undefined."""
    matrix = protocol_matrix(confusion, protocol).astype(np.float64)
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    iou = 100 * _ratio(tp, tp + fp + fn)
    dice = 100 * _ratio(2 * tp, 2 * tp + fp + fn)
    listed = NUM_CLASSES if protocol == 'bg_counted' else NUM_TISSUE_CLASSES
    tissue = slice(0, NUM_TISSUE_CLASSES)
    scored = ~np.isnan(iou[tissue])
    return dict(
        IoU=dict(zip(ALL_CLASSES[:listed], iou[:listed].tolist())),
        Dice=dict(zip(ALL_CLASSES[:listed], dice[:listed].tolist())),
        mIoU=float(iou[tissue][scored].mean()) if scored.any() else math.nan,
        mDice=float(dice[tissue][scored].mean()) if scored.any() else math.nan,
        FwIoU=_nan_weighted_mean(iou[tissue], matrix.sum(axis=1)[tissue]),
        confusion=protocol_matrix(confusion, protocol).tolist())


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(value) for value in obj]
    return None if isinstance(obj, float) and math.isnan(obj) else obj


@METRICS.register_module()
class WSSSMetric(BaseMetric):
    """Confusion-matrix IoU/Dice/FwIoU per gating and background protocol (module docstring).

    Args:
        output_file (str, optional): where to write the full result JSON (atomically).
        **kwargs: ``collect_device``, ``prefix``, ``collect_dir`` of ``BaseMetric``.

    Each sample's result is its own small confusion matrix per gating, so that distributed
    collection drops the samples the sampler duplicated for padding.
    """

    def __init__(self, output_file=None, **kwargs):
        super().__init__(**kwargs)
        self.output_file = output_file

    def process(self, data_batch, data_samples):
        """Store one confusion matrix per gating for every sample."""
        for sample in data_samples:
            where = sample.get('img_path', 'data sample')
            gt = sample['gt_sem_seg']['data'].squeeze().cpu().numpy()
            self.results.append(dict(
                protocol=dict(sample.get('protocol', {})),
                confusion={gating: confusion_matrix(gt, pred, f'{where} ({gating})')
                           for gating, pred in self._predictions(sample, where).items()}))

    @staticmethod
    def _predictions(sample, where):
        """{gating: label map} from ``pred_sem_seg_<gating>`` or, failing that, ``pred_sem_seg``."""
        preds = {key[len(PRED_PREFIX):]: value['data'].squeeze().cpu().numpy()
                 for key, value in sample.items() if key.startswith(PRED_PREFIX)}
        if preds:
            return preds
        gating = sample.get('protocol', {}).get('gating')
        if gating is None or 'pred_sem_seg' not in sample:
            raise KeyError(f'{where}: no pred_sem_seg_<gating> fields, and no pred_sem_seg with '
                           "metainfo protocol['gating'] naming its gating")
        return {gating: sample['pred_sem_seg']['data'].squeeze().cpu().numpy()}

    def compute_metrics(self, results):
        """Sum the matrices, score both protocols, log a table, write the JSON, return flat keys."""
        logger = MMLogger.get_current_instance()
        protocol = results[0]['protocol']
        if any(result['protocol'] != protocol for result in results):
            raise ValueError('WSSSMetric: data samples carry different protocol switches; '
                             f'first is {protocol}')
        gatings = sorted({gating for result in results for gating in result['confusion']})
        scores = {}
        for gating in gatings:
            total = sum(r['confusion'][gating] for r in results if gating in r['confusion'])
            scores[gating] = {name: protocol_scores(total, name) for name in PROTOCOLS}
            self._warn_unscored(gating, scores[gating], logger)
            print_log(f'WSSSMetric, {gating} gating (%):\n' + _table(scores[gating]), logger)
        if self.output_file:
            write_json_atomic(self.output_file, _nan_to_none(dict(
                protocol=protocol, classes=list(ALL_CLASSES), num_images=len(results),
                results=scores)))
        return _flat_metrics(scores, logger)

    @staticmethod
    def _warn_unscored(gating, gating_scores, logger):
        for protocol, result in gating_scores.items():
            absent = [c for c in ALL_CLASSES[:NUM_TISSUE_CLASSES] if math.isnan(result['IoU'][c])]
            if absent:
                print_log(f'WSSSMetric: {absent} absent from ground truth and prediction '
                          f'({gating}/{protocol}); left out of the means', logger, logging.WARNING)


def _flat_metrics(scores, logger):
    """``mIoU``/``mDice``/``FwIoU`` of the paper protocol plus ``<gating>/<protocol>/<name>``."""
    flat = {}
    for gating, gating_scores in scores.items():
        for protocol, result in gating_scores.items():
            prefix = f'{gating}/{protocol}/'
            flat.update({prefix + key: result[key] for key in ('mIoU', 'mDice', 'FwIoU')})
            for kind in ('IoU', 'Dice'):
                flat.update({f'{prefix}{kind}.{c}': v for c, v in result[kind].items()})
    paper = PAPER_GATING if PAPER_GATING in scores else next(iter(scores))
    if paper != PAPER_GATING:
        print_log(f'WSSSMetric: no {PAPER_GATING} gating; mIoU/mDice/FwIoU are {paper}-gated',
                  logger, logging.WARNING)
    return {key: scores[paper]['bg_counted'][key] for key in ('mIoU', 'mDice', 'FwIoU')} | flat


def _table(gating_scores):
    """Per-class IoU/Dice of both protocols, then the means, as a PrettyTable string."""
    table = PrettyTable(['Class'] + [f'{kind} {protocol}' for protocol in PROTOCOLS
                                     for kind in ('IoU', 'Dice')])
    rows = [(c, [(gating_scores[p]['IoU'].get(c), gating_scores[p]['Dice'].get(c))
                 for p in PROTOCOLS]) for c in ALL_CLASSES]
    rows.append(('mean (tissue)', [(gating_scores[p]['mIoU'], gating_scores[p]['mDice'])
                                   for p in PROTOCOLS]))
    rows.append(('FwIoU (tissue)', [(gating_scores[p]['FwIoU'], None) for p in PROTOCOLS]))
    for name, pairs in rows:
        table.add_row([name] + ['-' if v is None else f'{v:.2f}' for pair in pairs for v in pair])
    return table.get_string()
