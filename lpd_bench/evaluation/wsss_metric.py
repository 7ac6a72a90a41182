"""WSSSMetric: dataset-level IoU / Dice / FwIoU of BCSS-WSSS under three background protocols.

See ARCHITECTURE.md "Metric contract" and docs/protocol.md, section 5.

- One 5x5 confusion matrix per prediction variant over the whole split, rows = ground truth,
  columns = prediction, class order TUM, STR, LYM, NEC, BG. Ground-truth 255 (padding) is
  ignored. A variant is whatever ``pred_sem_seg_<variant>`` fields the samples carry: the
  segmentor writes ``oracle``, ``predicted`` and, with CRF, ``oracle_crf``, ``predicted_crf``
  (gating + ``_crf``); any name is scored the same way. A sample with only ``pred_sem_seg`` is
  the variant its metainfo ``protocol`` names (gating + ``_crf`` if CRF'd); an ordinary mmseg
  segmentor records none, so its config gives the metric ``default_protocol``, e.g.
  ``dict(gating='none', crf=False)`` for the second stage's network (no labels at test).
- ``bg_counted`` (paper protocol, the public LPD/PBIP code): the full matrix. Tissue predicted on
  background pixels is a false positive, background predicted on tissue a false negative.
- ``bg_ignored`` (MLPS ignore convention): pixels whose ground truth is BG are dropped (the BG row
  is zeroed); tissue predicted as BG still counts as a false negative.
- ``bg_from_gt`` (WSSS-Tissue/MLPS and SSHR code): ground-truth background pixels are copied into
  the prediction before scoring (``pred[gt == 4] = 4``). On the matrix this is exactly: the BG
  row's counts all move to the BG column (row BG = ground truth BG; after the copy every such
  pixel is predicted BG), so it costs no per-pixel work. Tissue predicted as BG on tissue pixels
  still counts as a false negative of that tissue (and a false positive of BG).
- IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN). A class absent from both ground truth
  and prediction has no score (NaN, ``null`` in JSON) and is left out of the means, with a warning.
  mIoU and mDice are means over the four tissue classes in every protocol. IoU/Dice dicts list BG
  too in ``bg_counted`` and ``bg_from_gt`` (for information), the tissues only in ``bg_ignored``.
- ``FwIoU`` (as the public code): sum_c n_c * IoU_c / sum_c n_c over all 5 classes, n_c = ground
  truth pixels of class c in the protocol's matrix (classes with n_c = 0 weigh nothing). In
  ``bg_ignored`` BG has n_c = 0, so FwIoU there equals ``FwIoU_tissue``.
- ``FwIoU_tissue`` (ours, the earlier definition): the same weighted mean over the four tissue
  classes only.
- All values are percentages.
- Class names (the keys of the IoU/Dice dicts, the flat ``IoU.<class>`` keys, the table and the
  JSON's ``classes``) are the evaluated dataset's ``metainfo['classes']`` (MMEngine's loops set
  it as ``dataset_meta``), e.g. TE, NEC, LYM, TAS, BG on LUAD-HistoSeg; BCSS-WSSS's without it.
- Per image (``per_image`` in the JSON): each test image's raw 5x5 matrix of every variant, before
  any background protocol, with the image file names, in dataset order (the order MMEngine's
  collection restores in distributed evaluation; each name travels with its own matrices, so the
  two cannot come apart). The whole-split matrix of a variant is their sum. The report resamples
  them (bootstrap over test images, ``lpd_bench/report/stats.py``).
"""
import logging
import math
from pathlib import Path

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
PROTOCOLS = ('bg_counted', 'bg_ignored', 'bg_from_gt')
#: Protocols whose IoU/Dice dicts list BG as well (BG has ground-truth pixels there).
PROTOCOLS_LISTING_BG = ('bg_counted', 'bg_from_gt')
#: Variant whose bg_counted numbers are the flat ``mIoU``/``mDice``/``FwIoU`` (paper protocol,
#: oracle gating, no CRF: the key ``save_best='mIoU'`` reads).
PAPER_VARIANT = 'oracle'
#: Scores of each protocol block (besides the per-class IoU/Dice dicts and the confusion).
MEANS = ('mIoU', 'mDice', 'FwIoU', 'FwIoU_tissue')
CRF_SUFFIX = '_crf'


def split_variant(variant):
    """``(gating, crf)`` of a variant name: ``'oracle_crf'`` -> ``('oracle', True)``."""
    return variant.removesuffix(CRF_SUFFIX), variant.endswith(CRF_SUFFIX)


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
    """The confusion matrix a protocol scores (module docstring), from the full 5x5 matrix (or a
    stack of them, ``(..., 5, 5)``).

    ``bg_ignored`` zeroes the BG ground-truth row; ``bg_from_gt`` moves the whole BG row into
    its BG column (the matrix of the prediction with ground-truth BG pixels copied in).
    """
    confusion = np.asarray(confusion)
    if protocol == 'bg_counted':
        return confusion
    kept = confusion.copy()
    if protocol == 'bg_ignored':
        kept[..., BACKGROUND_INDEX, :] = 0
        return kept
    if protocol == 'bg_from_gt':
        kept[..., BACKGROUND_INDEX, :] = 0
        kept[..., BACKGROUND_INDEX, BACKGROUND_INDEX] = confusion[..., BACKGROUND_INDEX, :].sum(-1)
        return kept
    raise ValueError(f'unknown protocol {protocol!r}, expected one of {PROTOCOLS}')


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan),
                     where=denominator > 0)


def _nan_weighted_mean(values, weights):
    ok = ~np.isnan(values)
    return float(np.average(values[ok], weights=weights[ok])) if weights[ok].sum() > 0 else math.nan


def protocol_scores(confusion, protocol, classes=ALL_CLASSES):
    """IoU/Dice per class, mIoU/mDice (tissue), FwIoU (5 classes), FwIoU_tissue, in percent.

    ``confusion`` is the full 5x5 matrix; undefined values are NaN (module docstring);
    ``classes`` names its rows (the IoU/Dice keys).
    """
    scored_matrix = protocol_matrix(confusion, protocol)
    matrix = scored_matrix.astype(np.float64)
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    iou = 100 * _ratio(tp, tp + fp + fn)
    dice = 100 * _ratio(2 * tp, 2 * tp + fp + fn)
    listed = NUM_CLASSES if protocol in PROTOCOLS_LISTING_BG else NUM_TISSUE_CLASSES
    tissue = slice(0, NUM_TISSUE_CLASSES)
    scored = ~np.isnan(iou[tissue])
    gt_pixels = matrix.sum(axis=1)
    return dict(
        IoU=dict(zip(classes[:listed], iou[:listed].tolist())),
        Dice=dict(zip(classes[:listed], dice[:listed].tolist())),
        mIoU=float(iou[tissue][scored].mean()) if scored.any() else math.nan,
        mDice=float(dice[tissue][scored].mean()) if scored.any() else math.nan,
        FwIoU=_nan_weighted_mean(iou, gt_pixels),
        FwIoU_tissue=_nan_weighted_mean(iou[tissue], gt_pixels[tissue]),
        confusion=scored_matrix.tolist())


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(value) for value in obj]
    return None if isinstance(obj, float) and math.isnan(obj) else obj


@METRICS.register_module()
class WSSSMetric(BaseMetric):
    """Confusion-matrix IoU/Dice/FwIoU per prediction variant and background protocol.

    Args:
        output_file (str, optional): where to write the full result JSON (atomically).
        default_protocol (dict, optional): the protocol record of samples whose metainfo has
            none (an ordinary mmseg segmentor's): its ``gating`` (and ``crf``) name the variant
            of their ``pred_sem_seg``, and it is the JSON's ``protocol``. Samples that carry a
            record keep theirs.
        **kwargs: ``collect_device``, ``prefix``, ``collect_dir`` of ``BaseMetric``.

    Each sample's result is its own small confusion matrix per variant, so that distributed
    collection drops the samples the sampler duplicated for padding. The three protocols are
    derived from the summed matrix (module docstring), so they cost nothing per pixel.
    """

    def __init__(self, output_file=None, default_protocol=None, **kwargs):
        super().__init__(**kwargs)
        self.output_file = output_file
        self.default_protocol = None if default_protocol is None else dict(default_protocol)

    @property
    def classes(self):
        """Names of the 5 classes: the dataset's ``metainfo['classes']`` (``dataset_meta``) if it
        names 5, else BCSS-WSSS's (no dataset meta, e.g. the metric used on its own)."""
        classes = tuple((self.dataset_meta or {}).get('classes') or ())
        return classes if len(classes) == NUM_CLASSES else ALL_CLASSES

    def process(self, data_batch, data_samples):
        """Store one confusion matrix per variant for every sample."""
        for sample in data_samples:
            where = sample.get('img_path', 'data sample')
            gt = sample['gt_sem_seg']['data'].squeeze().cpu().numpy()
            protocol = dict(sample.get('protocol', self.default_protocol or {}))
            self.results.append(dict(
                name=Path(sample['img_path']).name if 'img_path' in sample else None,
                protocol=protocol,
                confusion={variant: confusion_matrix(gt, pred, f'{where} ({variant})')
                           for variant, pred in self._predictions(sample, where,
                                                                  protocol).items()}))

    @staticmethod
    def _predictions(sample, where, protocol):
        """{variant: label map} from ``pred_sem_seg_<variant>`` or, failing that, ``pred_sem_seg``.

        The fallback names ``pred_sem_seg`` after the ``protocol`` record (the sample's, else the
        metric's ``default_protocol``): its ``gating``, plus ``_crf`` when ``crf`` is on (contract
        C1: ``pred_sem_seg`` is the configured gating, with CRF when crf=True).
        """
        preds = {key[len(PRED_PREFIX):]: value['data'].squeeze().cpu().numpy()
                 for key, value in sample.items() if key.startswith(PRED_PREFIX)}
        if preds:
            return preds
        gating = protocol.get('gating')
        if gating is None or 'pred_sem_seg' not in sample:
            raise KeyError(f'{where}: no pred_sem_seg_<variant> fields, and no pred_sem_seg with '
                           "metainfo protocol['gating'] (or the metric's default_protocol) "
                           'naming its gating')
        variant = gating + (CRF_SUFFIX if protocol.get('crf') else '')
        return {variant: sample['pred_sem_seg']['data'].squeeze().cpu().numpy()}

    def compute_metrics(self, results):
        """Sum the matrices, score every protocol, log tables, write the JSON, return flat keys."""
        logger = MMLogger.get_current_instance()
        protocol = results[0]['protocol']
        if any(result['protocol'] != protocol for result in results):
            raise ValueError('WSSSMetric: data samples carry different protocol switches; '
                             f'first is {protocol}')
        variants = sorted({variant for result in results for variant in result['confusion']})
        classes = self.classes
        scores = {}
        for variant in variants:
            total = sum(r['confusion'][variant] for r in results if variant in r['confusion'])
            scores[variant] = {name: protocol_scores(total, name, classes) for name in PROTOCOLS}
            self._warn_unscored(variant, scores[variant], classes, logger)
            print_log(f'WSSSMetric, {variant_title(variant)} (%):\n' +
                      _table(scores[variant], classes), logger)
        if self.output_file:
            write_json_atomic(self.output_file, _nan_to_none(dict(
                protocol=protocol, classes=list(classes), num_images=len(results),
                results=scores, per_image=per_image_block(results, variants))))
        return _flat_metrics(scores, logger)

    @staticmethod
    def _warn_unscored(variant, variant_scores, classes, logger):
        for protocol, result in variant_scores.items():
            absent = [c for c in classes[:NUM_TISSUE_CLASSES] if math.isnan(result['IoU'][c])]
            if absent:
                print_log(f'WSSSMetric: {absent} absent from ground truth and prediction '
                          f'({variant}/{protocol}); left out of the means', logger, logging.WARNING)


def per_image_block(results, variants):
    """``{"names": [...], "confusion": {variant: N x 5 x 5 ints}}`` of the collected results
    (dataset order). An image without a variant gets a zero matrix there, so that the per-image
    matrices of every variant still sum to its whole-split matrix. A sample without ``img_path``
    is named ``#<position>``."""
    zero = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    names = [r.get('name') or f'#{i}' for i, r in enumerate(results)]
    confusion = {variant: np.stack([r['confusion'].get(variant, zero) for r in results]).tolist()
                 for variant in variants}
    return dict(names=names, confusion=confusion)


def variant_title(variant):
    """'oracle gating, CRF' / 'predicted gating, no CRF' for a variant name."""
    gating, crf = split_variant(variant)
    return f'{gating} gating, {"CRF" if crf else "no CRF"}'


def _flat_metrics(scores, logger):
    """``mIoU``/``mDice``/``FwIoU`` of the paper protocol plus ``<variant>/<protocol>/<name>``."""
    flat = {}
    for variant, variant_scores in scores.items():
        for protocol, result in variant_scores.items():
            prefix = f'{variant}/{protocol}/'
            flat.update({prefix + key: result[key] for key in MEANS})
            for kind in ('IoU', 'Dice'):
                flat.update({f'{prefix}{kind}.{c}': v for c, v in result[kind].items()})
    if PAPER_VARIANT in scores:
        paper = PAPER_VARIANT
    else:  # prefer a variant without CRF, as the paper variant is
        paper = next((v for v in scores if not split_variant(v)[1]), next(iter(scores)))
        print_log(f'WSSSMetric: no {PAPER_VARIANT!r} variant; mIoU/mDice/FwIoU are {paper!r}',
                  logger, logging.WARNING)
    return {key: scores[paper]['bg_counted'][key] for key in ('mIoU', 'mDice', 'FwIoU')} | flat


def _table(variant_scores, classes=ALL_CLASSES):
    """Per-class IoU/Dice of every protocol, then the means, as a PrettyTable string."""
    table = PrettyTable(['Class'] + [f'{kind} {protocol}' for protocol in PROTOCOLS
                                     for kind in ('IoU', 'Dice')])
    rows = [(c, [(variant_scores[p]['IoU'].get(c), variant_scores[p]['Dice'].get(c))
                 for p in PROTOCOLS]) for c in classes]
    rows.append(('mean (tissue)', [(variant_scores[p]['mIoU'], variant_scores[p]['mDice'])
                                   for p in PROTOCOLS]))
    rows.append(('FwIoU (5 cl.)', [(variant_scores[p]['FwIoU'], None) for p in PROTOCOLS]))
    rows.append(('FwIoU (tissue)', [(variant_scores[p]['FwIoU_tissue'], None)
                                    for p in PROTOCOLS]))
    for name, pairs in rows:
        table.add_row([name] + ['-' if v is None else f'{v:.2f}' for pair in pairs for v in pair])
    return table.get_string()
