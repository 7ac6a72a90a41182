"""Score tables of stored results (pandas): one long frame, mean +- std over seeds, writers.

The long frame has one row per (result, checkpoint, variant, background protocol, group
membership). A variant is a gating plus an optional CRF (``oracle``, ``oracle_crf``, ...: contract
C1); the checkpoint is ``last`` (``result['metrics']``, what the public code tests) or ``best``
(``result['metrics_by_checkpoint']['best']``, the best-on-val checkpoint, when the run has one).
Results written before CRF variants, ``bg_from_gt`` or ``metrics_by_checkpoint`` existed simply
have fewer rows; the tables show '-' where a combination is missing.

Std is the sample standard deviation over seeds (ddof=1); with one seed it is left blank. Where
the results hold per-image data, the tables show 95% bootstrap intervals instead
(:mod:`.uncertainty`, columns ``*_lo`` / ``*_hi``).

The per-class columns are named after the results' data set (:mod:`.dataset`): TUM, STR, LYM,
NEC, BG on BCSS-WSSS (:data:`SCORES`), TE, NEC, LYM, TAS, BG on LUAD-HistoSeg
(:func:`score_names`); :func:`frame_scores` gives a frame's.

Stage-2 results (``result['stage'] == 2``: an ordinary segmentation network trained on a method's
train pseudo-masks and tested with no labels at all, ``source_run`` = the stage-1 run) are rows
of their own gating, :data:`STAGE2` ('stage2', its 'none' variant; any other variant it held
would be 'stage2_<gating>'), so that they never mix with the stage-1 rows of the same method and
seed (not even with a stage-1 'none' gating such as the colour rule's). The frame's ``stage``
column says 1 or 2. Their pseudo-mask quality (``pseudo_masks.val.mIoU``: the same pseudo-mask
step run on val, scored against val's masks) is read by :func:`pseudo_mask_frame`.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.bcss_meta import ALL_CLASSES, BACKGROUND
from ..runner.results import CHECKPOINT_CHOICES, valid_metrics
from ..runner.results import checkpoint_metrics as stored_metrics
from ..methods import MAIN_GROUP, ablation_groups, method_labels, method_names

#: Background protocols of the metric (lpd_bench.evaluation.wsss_metric.PROTOCOLS), in order.
PROTOCOLS = ('bg_counted', 'bg_ignored', 'bg_from_gt')
#: Gating of the rows of a stage-2 result (module docstring).
STAGE2 = 'stage2'
#: Gatings in table order: oracle labels, the classifier's, none (all four tissues allowed), then
#: the stage-2 block (a network trained on pseudo-masks, no labels at test).
GATINGS = ('oracle', 'predicted', 'none', STAGE2)
CRF_SUFFIX = '_crf'
MEANS = ('mIoU', 'mDice', 'FwIoU', 'FwIoU_tissue')


def score_names(classes=ALL_CLASSES) -> tuple:
    """Score columns: the per-class IoU of ``classes`` (4 tissues, then the background), then
    the means."""
    return (*classes, *MEANS)


#: The score columns of BCSS-WSSS results.
SCORES = score_names()
#: Display names of score columns that are not self-explanatory.
SCORE_LABELS = {'FwIoU': 'FwIoU (5 cl.)', 'FwIoU_tissue': 'FwIoU tissue (ours)', BACKGROUND: 'BG'}
GATING_LABELS = {'oracle': 'oracle (image labels from the GT mask)',
                 'predicted': 'predicted (classifier score > threshold)',
                 'none': 'none (no labels at test)',
                 STAGE2: "stage 2, no labels at test (network trained on the method's train "
                         'pseudo-masks)'}
PROTOCOL_LABELS = {'bg_counted': 'paper (BG counted)', 'bg_ignored': 'MLPS (BG pixels ignored)',
                   'bg_from_gt': 'GT BG copied into prediction'}
#: Short protocol names for column headers.
PROTOCOL_SHORT = {'bg_counted': 'BG counted', 'bg_ignored': 'BG ignored',
                  'bg_from_gt': 'BG from GT'}
#: Shown in the CRF column of rows without score maps (the label-only reference).
CRF_NOT_APPLICABLE = 'n/a (no maps)'
#: Row label of the reference computed from the data alone.
REFERENCE_LABELS = {'label_only': 'Label-only floor (oracle labels, no image content)'}


def row_labels() -> dict:
    """Method (and reference) -> its row label; unregistered methods keep their name."""
    return {**method_labels(), **REFERENCE_LABELS}


def row_order() -> list:
    """The registered methods in table order, then the references."""
    return [*method_names(), *REFERENCE_LABELS]


def ordered_methods(present) -> list:
    """``present`` methods: registered ones in table order, then the others by name."""
    known = row_order()
    return [m for m in known if m in present] + sorted(set(present) - set(known))
CHECKPOINTS = ('last', 'best')


def result_stage(result) -> int:
    """1 or 2: a result's ``stage`` (stage-1 results have none)."""
    try:
        return int(result.get('stage') or 1)
    except (TypeError, ValueError):
        return 1


def is_stage2_gating(gating) -> bool:
    """A gating of stage-2 rows (:data:`STAGE2` or ``stage2_<gating>``)."""
    return isinstance(gating, str) and (gating == STAGE2 or gating.startswith(STAGE2 + '_'))


def result_gating(result, gating) -> str:
    """The gating a stored variant's rows carry: a stage-1 result's as stored; a stage-2
    result's :data:`STAGE2` for its ungated ('none') variant, ``stage2_<gating>`` for another."""
    if result_stage(result) != 2:
        return gating
    return STAGE2 if gating == 'none' else f'{STAGE2}_{gating}'


def result_variant(result, variant) -> str:
    """The name of a stored variant in the frame, intervals and comparisons (stage-2
    results: :func:`result_gating`): 'none' of a stage-2 result -> 'stage2'."""
    gating, crf = split_variant(variant)
    return variant_name(result_gating(result, gating), crf)


def split_variant(variant):
    """``(gating, crf)`` of a variant name (contract C1): 'oracle_crf' -> ('oracle', True)."""
    return variant.removesuffix(CRF_SUFFIX), variant.endswith(CRF_SUFFIX)


def variant_rank(variant):
    """Sort key of variants: gatings in table order (oracle, predicted, none), CRF first."""
    gating, crf = split_variant(variant)
    return (GATINGS.index(gating) if gating in GATINGS else len(GATINGS), gating, not crf)


def variant_name(gating, crf) -> str:
    return gating + (CRF_SUFFIX if crf else '')


def _no_crf_flag(crf) -> bool:
    """True for rows where CRF does not apply (None, or NaN after a pandas round trip)."""
    return crf is None or (isinstance(crf, float) and np.isnan(crf))


def crf_label(crf) -> str:
    if _no_crf_flag(crf):
        return CRF_NOT_APPLICABLE
    return 'CRF' if crf else 'no CRF'


def gating_short(gating) -> str:
    """A gating's name in column headers: as it is, 'stage 2' for :data:`STAGE2`."""
    if is_stage2_gating(gating):
        return 'stage 2' + gating[len(STAGE2):].replace('_', ', ', 1)
    return gating


def variant_label(variant) -> str:
    """'oracle, CRF' / 'predicted, no CRF' / 'stage 2, no CRF'."""
    gating, crf = split_variant(variant)
    return f'{gating_short(gating)}, {crf_label(crf)}'


def checkpoint_metrics(result) -> list:
    """``[(checkpoint, metric JSON)]`` of a result for every checkpoint choice it was tested
    with (:func:`lpd_bench.runner.results.checkpoint_metrics`: 'last' always, 'best' when the
    run saved and tested one)."""
    pairs = [(choice, stored_metrics(result, choice)) for choice in CHECKPOINT_CHOICES]
    return [(choice, metrics) for choice, metrics in pairs if valid_metrics(metrics)]


def block_scores(block, protocol, classes=ALL_CLASSES) -> dict:
    """Per-class IoU (of ``classes``, BCSS-WSSS's by default) and the means of one metric block,
    old or new.

    Metric JSON written before the 5-class FwIoU stored the tissue-only one as ``FwIoU`` and no
    ``FwIoU_tissue``: it is read as ``FwIoU_tissue``, and ``FwIoU`` is recomputed from the stored
    confusion matrix when there is one (missing otherwise).
    """
    values = {c: block.get('IoU', {}).get(c) for c in classes}
    values.update({k: block.get(k) for k in ('mIoU', 'mDice', 'FwIoU', 'FwIoU_tissue')})
    if 'FwIoU_tissue' not in block:
        values['FwIoU_tissue'] = block.get('FwIoU')
        values['FwIoU'] = _five_class_fwiou(block.get('confusion'), protocol)
    return values


def _five_class_fwiou(confusion, protocol):
    if protocol not in PROTOCOLS or np.shape(confusion or []) != (5, 5):
        return None
    from ..evaluation.wsss_metric import protocol_scores
    return protocol_scores(np.asarray(confusion, dtype=np.int64), protocol)['FwIoU']


def score_rows(result, classes=ALL_CLASSES) -> list:
    """One row per (checkpoint, variant, protocol) of a result: identifiers + scores (per-class
    IoU of ``classes``)."""
    rows = []
    stage = result_stage(result)
    for checkpoint, metrics in checkpoint_metrics(result):
        for stored, protocols in metrics['results'].items():
            variant = result_variant(result, stored)
            gating, crf = split_variant(variant)
            for protocol, block in protocols.items():
                rows.append({'run_id': result['run_id'], 'method': result['method'],
                             'seed': result['seed'], 'stage': stage, 'checkpoint': checkpoint,
                             'variant': variant, 'gating': gating, 'crf': crf,
                             'protocol': protocol, **block_scores(block, protocol, classes)})
    return rows


FRAME_KEYS = ['run_id', 'method', 'seed', 'stage', 'checkpoint', 'variant', 'gating', 'crf',
              'protocol', 'group', 'value']


def scores_frame(results, classes=None) -> pd.DataFrame:
    """Long frame of every result's scores, plus one row per (result, group membership); the
    per-class columns are ``classes`` (default: those of the results' data set,
    :func:`.dataset.class_names`)."""
    from .dataset import class_names
    classes = class_names(results) if classes is None else tuple(classes)
    scores = list(score_names(classes))
    rows = []
    for result in results:
        for membership in result.get('memberships') or _legacy_memberships(result):
            rows += [{**row, 'group': membership['name'], 'value': membership['value']}
                     for row in score_rows(result, classes)]
    frame = pd.DataFrame(rows, columns=[*FRAME_KEYS, *scores])
    frame[scores] = frame[scores].astype(float)
    return frame


#: Columns of :func:`pseudo_mask_frame`.
PSEUDO_MASK_KEYS = ['run_id', 'method', 'seed', 'source_run', 'val_mIoU', 'train_images',
                    'val_images', 'train_ignored_pixels']
#: Header of the pseudo-mask quality column of the main and protocols tables.
PSEUDO_MASK_COLUMN = 'pseudo-mask val mIoU'
#: What that column is, for the captions.
PSEUDO_MASK_NOTE = (f'{PSEUDO_MASK_COLUMN} (stage-2 rows only, mean ± std over seeds): the '
                    'quality of the pseudo-masks the stage-2 network was trained on cannot be '
                    'scored on train (train has no masks), so the same pseudo-mask step (the '
                    "method's stage-1 model, gated by the images' own labels) is also run on "
                    "val, with val's image labels, and scored against val's masks (paper "
                    'protocol, BG counted, %).')


def _number(value):
    """A float of a stored number, NaN when missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def pseudo_mask_frame(results) -> pd.DataFrame:
    """One row per stage-2 result: its pseudo-masks' val mIoU (``pseudo_masks.val.mIoU``; NaN
    when missing) and image counts (:data:`PSEUDO_MASK_KEYS`)."""
    rows = []
    for result in results:
        if result_stage(result) != 2:
            continue
        masks = result.get('pseudo_masks') or {}
        train, val = masks.get('train') or {}, masks.get('val') or {}
        rows.append({'run_id': result['run_id'], 'method': result['method'],
                     'seed': result['seed'], 'source_run': result.get('source_run'),
                     'val_mIoU': _number(val.get('mIoU')),
                     'train_images': _number(train.get('images')),
                     'val_images': _number(val.get('images')),
                     'train_ignored_pixels': _number(train.get('ignored_pixels'))})
    return pd.DataFrame(rows, columns=PSEUDO_MASK_KEYS)


def pseudo_mask_stats(masks: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean, std (ddof=1) and seeds (with a val mIoU) of :func:`pseudo_mask_frame`'s
    ``val_mIoU``: columns ``method``, ``pseudo_mask_mIoU_mean``, ``_std``, ``_seeds``."""
    columns = ['method', 'pseudo_mask_mIoU_mean', 'pseudo_mask_mIoU_std',
               'pseudo_mask_mIoU_seeds']
    scored = masks.dropna(subset=['val_mIoU']) if len(masks) else masks
    if not len(scored):
        return pd.DataFrame(columns=columns)
    grouped = scored.groupby('method', sort=False)
    out = pd.DataFrame({'pseudo_mask_mIoU_mean': grouped['val_mIoU'].mean(),
                        'pseudo_mask_mIoU_std': grouped['val_mIoU'].std(ddof=1),
                        'pseudo_mask_mIoU_seeds': grouped['seed'].nunique()}).reset_index()
    return out[columns]


def add_pseudo_masks(table: pd.DataFrame, masks: pd.DataFrame) -> pd.DataFrame:
    """``table`` (:func:`main_table`'s) with ``pseudo_mask_mIoU_mean/_std/_seeds`` from
    :func:`pseudo_mask_stats` ``masks`` on its stage-2 rows (NaN on the others)."""
    table = table.copy()
    by_method = masks.set_index('method') if len(masks) else None
    for stat in ('mean', 'std', 'seeds'):
        column = f'pseudo_mask_mIoU_{stat}'
        table[column] = [
            by_method.loc[m, column] if by_method is not None and is_stage2_gating(g)
            and m in by_method.index else np.nan
            for m, g in zip(table['method'], table['gating'])]
    return table


def pseudo_mask_cells(table: pd.DataFrame) -> list:
    """The :data:`PSEUDO_MASK_COLUMN` cells of a table with :func:`add_pseudo_masks`'s
    columns: 'mean ± std' on stage-2 rows, '-' elsewhere."""
    if 'pseudo_mask_mIoU_mean' not in table:
        return ['-'] * len(table)
    return [pm(m, s) for m, s in zip(table['pseudo_mask_mIoU_mean'],
                                     table['pseudo_mask_mIoU_std'])]


def frame_scores(frame: pd.DataFrame) -> tuple:
    """The score columns of a :func:`scores_frame` (per-class IoU named after its data set's
    classes, then the means)."""
    return tuple(column for column in frame.columns if column not in FRAME_KEYS)


def _legacy_memberships(result):
    """Results without ``memberships`` (schema example): their ``ablation`` only."""
    return [result['ablation']] if result.get('ablation') else []


def mean_std(frame: pd.DataFrame, by, columns=SCORES) -> pd.DataFrame:
    """Mean, std (ddof=1) and number of seeds of ``columns`` per group ``by``."""
    grouped = frame.groupby(list(by), sort=False)
    out = grouped[list(columns)].agg(['mean', 'std'])
    out.columns = [f'{c}_{stat}' for c, stat in out.columns]
    out['seeds'] = grouped['seed'].nunique()
    return out.reset_index()


def pm(mean, std, digits=2) -> str:
    """'71.20 ± 0.35', or just the mean when std is undefined (one seed)."""
    if pd.isna(mean):
        return '-'
    return f'{mean:.{digits}f}' + ('' if pd.isna(std) else f' ± {std:.{digits}f}')


def formatted(stats: pd.DataFrame, index, columns=SCORES) -> pd.DataFrame:
    """Display frame: ``index`` columns, then 'mean ± std' strings, then the seed count."""
    shown = stats[list(index)].copy()
    for column in columns:
        shown[SCORE_LABELS.get(column, column)] = [
            pm(m, s) for m, s in zip(stats[f'{column}_mean'], stats[f'{column}_std'])]
    shown['seeds'] = ['-' if pd.isna(n) or n == 0 else int(n) for n in stats['seeds']]
    return shown


def _order(values, known):
    """Sort positions: ``known`` first in their order, then the rest alphabetically."""
    rank = {v: i for i, v in enumerate(known)}
    return [(rank.get(v, len(rank)), str(v)) for v in values]


def _crf_rank(crf):
    """CRF rows first (the paper protocol), then no CRF, then rows where CRF does not apply."""
    return 2 if _no_crf_flag(crf) else (0 if crf else 1)


def main_table(frame: pd.DataFrame, reference: pd.DataFrame = None) -> pd.DataFrame:
    """Gating x CRF x background x method, last checkpoint (numeric mean/std), the label-only
    reference appended (oracle gating, CRF not applicable)."""
    main = frame[(frame['group'] == MAIN_GROUP) & (frame['checkpoint'] == 'last')]
    stats = mean_std(main, ['gating', 'crf', 'protocol', 'method'], frame_scores(frame))
    stats['crf'] = stats['crf'].astype(object)
    if reference is not None and len(reference):
        reference = reference.copy()
        reference['crf'] = None
        stats = pd.concat([stats, reference], ignore_index=True)
    keys = zip(_order(stats['gating'], GATINGS), map(_crf_rank, stats['crf']),
               _order(stats['protocol'], PROTOCOLS), _order(stats['method'], row_order()))
    stats['_order'] = list(keys)
    stats = stats.sort_values('_order', kind='stable').drop(columns='_order')
    stats.insert(0, 'Method', stats['method'].map(row_labels()).fillna(stats['method']))
    stats.insert(0, 'Background', stats['protocol'].map(PROTOCOL_LABELS).fillna(stats['protocol']))
    stats.insert(0, 'CRF', stats['crf'].map(crf_label))
    stats.insert(0, 'Gating', stats['gating'].map(GATING_LABELS).fillna(stats['gating']))
    return stats.reset_index(drop=True)


def protocol_columns(gatings=GATINGS, stage2_crf=False):
    """(gating, crf, protocol) of the compact table's columns, the paper protocol first; the
    stage-2 gatings have CRF columns only with ``stage2_crf`` (its networks are tested without
    CRF)."""
    return [(g, crf, p) for g in gatings for crf in (True, False) for p in PROTOCOLS
            if not (crf and is_stage2_gating(g) and not stage2_crf)]


def protocol_column_label(gating, crf, protocol) -> str:
    return f'{gating_short(gating)}, {crf_label(crf)}, {PROTOCOL_SHORT[protocol]}'


def interval_text(mean, lo, hi, digits=2) -> str:
    """'71.20 [70.10, 72.35]' (mean and 95% interval)."""
    return f'{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]'


def score_cell(mean, std, lo=np.nan, hi=np.nan) -> str:
    """The interval when there is one, else mean ± std over seeds (:func:`pm`)."""
    if pd.isna(mean) or pd.isna(lo) or pd.isna(hi):
        return pm(mean, std)
    return interval_text(mean, lo, hi)


#: Columns of the gating's worth (oracle minus predicted mIoU, paper background protocol).
GAIN_COLUMNS = ((True, 'oracle − predicted, CRF'), (False, 'oracle − predicted, no CRF'))


def protocols_table(main: pd.DataFrame, score='mIoU', gains: pd.DataFrame = None,
                    pseudo_masks: pd.DataFrame = None):
    """One row per method, ``score`` for every (gating x CRF x background) combination.

    ``main`` is :func:`main_table`'s output, with ``<score>_lo`` / ``<score>_hi`` (the 95%
    interval) where :func:`lpd_bench.report.uncertainty.annotate_main` added them. Returns
    ``(shown, numeric)``; combinations without results are '-' (older results: no CRF, no
    ``bg_from_gt``; methods without that gating), and 'n/a' where they cannot apply (the
    label-only reference has no maps for a CRF and is oracle-gated only; its scores are in the
    no-CRF columns). Cells show the interval when there is one, else mean ± std over seeds.
    ``gains`` (:func:`lpd_bench.report.uncertainty.gating_gains`): the columns "oracle −
    predicted" (paper background protocol, with and without CRF); gatings only those present.
    ``pseudo_masks`` (:func:`pseudo_mask_stats`): the column :data:`PSEUDO_MASK_COLUMN` (val
    mIoU of each method's pseudo-masks, mean ± std over its stage-2 seeds; '-' for methods
    without a stage-2 run).
    """
    methods = ordered_methods(set(main['method']))
    labels = row_labels()
    numeric = pd.DataFrame({'method': methods})
    shown = pd.DataFrame({'Method': [labels.get(m, m) for m in methods]})
    # rows where CRF does not apply are shown as they are, in the no-CRF columns
    crf_keys = pd.Series([False if _no_crf_flag(c) else bool(c) for c in main['crf']],
                         index=main.index)
    gatings = [g for g in GATINGS if g in set(main['gating'])] + sorted(
        set(main['gating']) - set(GATINGS))
    stage2_crf = any(not _no_crf_flag(c) and bool(c)
                     for g, c in zip(main['gating'], main['crf']) if is_stage2_gating(g))
    for gating, crf, protocol in protocol_columns(gatings, stage2_crf):
        key = f'{variant_name(gating, crf)}_{protocol}'
        values = {stat: [] for stat in ('mean', 'std', 'lo', 'hi')}
        cells = []
        for method in methods:
            rows = main[(main['method'] == method) & (main['gating'] == gating)
                        & (main['protocol'] == protocol) & (crf_keys == crf)]
            for stat in values:
                column = f'{score}_{stat}'
                values[stat].append(rows[column].iloc[0] if len(rows) and column in rows
                                    else np.nan)
            not_applicable = method in REFERENCE_LABELS and (crf or gating != 'oracle')
            cells.append('n/a' if not_applicable else score_cell(
                *(values[stat][-1] for stat in ('mean', 'std', 'lo', 'hi'))))
        for stat, column in values.items():
            numeric[f'{key}_{score}_{stat}'] = column
        shown[protocol_column_label(gating, crf, protocol)] = cells
    if gains is not None:
        for crf, title in GAIN_COLUMNS:
            picked = [gains[(gains['method'] == m) & (gains['crf'] == crf)] for m in methods]
            tag = f'oracle_minus_predicted{CRF_SUFFIX if crf else ""}'
            for column in ('difference', 'lo', 'hi', 'p_holm'):
                numeric[f'{tag}_{column}'] = [p[column].iloc[0] if len(p) else np.nan
                                              for p in picked]
            shown[title] = ['n/a' if m in REFERENCE_LABELS else
                            p['text'].iloc[0] if len(p) else '-'
                            for m, p in zip(methods, picked)]
    if pseudo_masks is not None and len(pseudo_masks):
        by_method = pseudo_masks.set_index('method')
        for stat in ('mean', 'std'):
            numeric[f'pseudo_mask_mIoU_{stat}'] = [
                by_method.loc[m, f'pseudo_mask_mIoU_{stat}'] if m in by_method.index else np.nan
                for m in methods]
        shown[PSEUDO_MASK_COLUMN] = [pm(m, s) for m, s in zip(numeric['pseudo_mask_mIoU_mean'],
                                                              numeric['pseudo_mask_mIoU_std'])]
    if 'interval_basis' in main:
        basis = main[~main['gating'].map(is_stage2_gating)].groupby('method')[
            'interval_basis'].first()
        shown['intervals'] = [basis.get(m, '-') for m in methods]
    second = main['gating'].map(is_stage2_gating).astype(bool)
    seeds = main[~second].groupby('method')['seeds'].max()
    numeric['seeds'] = [seeds.get(m) for m in methods]
    shown['seeds'] = ['-' if pd.isna(n) or n == 0 else int(n) for n in numeric['seeds']]
    if second.any():  # the stage-2 runs' own seeds
        seeds = main[second].groupby('method')['seeds'].max()
        numeric['stage2_seeds'] = [seeds.get(m) for m in methods]
        shown['stage-2 seeds'] = ['-' if pd.isna(n) or n == 0 else int(n)
                                  for n in numeric['stage2_seeds']]
    return shown, numeric


def checkpoints_table(frame: pd.DataFrame):
    """Per method: last vs best-on-val mIoU, paper protocol (oracle, BG counted), with and
    without CRF. Returns ``(shown, numeric)``; '-' where no run has that checkpoint/variant."""
    rows = frame[(frame['group'] == MAIN_GROUP) & (frame['gating'] == 'oracle')
                 & (frame['protocol'] == 'bg_counted') & (frame['stage'] != 2)]
    stats = mean_std(rows, ['method', 'variant', 'checkpoint'], columns=('mIoU', ))
    methods = ordered_methods(set(rows['method']))
    labels = row_labels()
    numeric = pd.DataFrame({'method': methods})
    shown = pd.DataFrame({'Method': [labels.get(m, m) for m in methods]})
    for crf in (True, False):
        for checkpoint in CHECKPOINTS:
            variant = variant_name('oracle', crf)
            key = f'{checkpoint}_{variant}'
            picked = [stats[(stats['method'] == m) & (stats['variant'] == variant)
                            & (stats['checkpoint'] == checkpoint)] for m in methods]
            numeric[f'{key}_mIoU_mean'] = [p['mIoU_mean'].iloc[0] if len(p) else np.nan
                                           for p in picked]
            numeric[f'{key}_mIoU_std'] = [p['mIoU_std'].iloc[0] if len(p) else np.nan
                                          for p in picked]
            numeric[f'{key}_seeds'] = [int(p['seeds'].iloc[0]) if len(p) else 0 for p in picked]
            shown[f'{checkpoint}, {crf_label(crf)}'] = [
                pm(m, s) for m, s in zip(numeric[f'{key}_mIoU_mean'], numeric[f'{key}_mIoU_std'])]
    for checkpoint in CHECKPOINTS:
        counts = numeric[[f'{checkpoint}_oracle_crf_seeds', f'{checkpoint}_oracle_seeds']]
        shown[f'seeds ({checkpoint})'] = ['-' if n == 0 else int(n) for n in counts.max(axis=1)]
    return shown, numeric


def ablation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every ablation point, paper protocol, last checkpoint, every variant side by side
    (numeric mean/std; columns ``<variant>_<score>_<stat>`` and ``<variant>_seeds``)."""
    groups = ablation_groups()
    rows = frame[(frame['group'].isin(groups)) & (frame['protocol'] == 'bg_counted')
                 & (frame['checkpoint'] == 'last') & (frame['stage'] != 2)]
    stats = mean_std(rows, ['group', 'value', 'variant'], columns=('mIoU', 'mDice'))
    run_ids = rows.groupby(['group', 'value'], sort=False)['run_id'].agg(
        lambda ids: ', '.join(sorted({i.rsplit('__seed', 1)[0] for i in ids})))
    wide = stats.pivot(index=['group', 'value'], columns='variant',
                       values=['mIoU_mean', 'mIoU_std', 'mDice_mean', 'mDice_std', 'seeds'])
    wide.columns = [f'{variant}_{name}' for name, variant in wide.columns]
    wide = wide.reset_index()
    wide['runs'] = [run_ids[(g, v)] for g, v in zip(wide['group'], wide['value'])]
    group_order = {g: i for i, g in enumerate(groups)}
    point_order = {(p.group, str(p.value)): i for points in groups.values()
                   for i, p in enumerate(points)}
    wide['_order'] = [(group_order[g], point_order.get((g, str(v)), 99))
                      for g, v in zip(wide['group'], wide['value'])]
    return wide.sort_values('_order').drop(columns='_order').reset_index(drop=True)


def write_table(shown: pd.DataFrame, numeric: pd.DataFrame, out_dir, name, caption) -> list:
    """``name``.md (caption + Markdown), ``name``.tex (LaTeX) and ``name``.csv (numeric)."""
    out_dir = Path(out_dir)
    paths = [out_dir / f'{name}.{ext}' for ext in ('md', 'tex', 'csv')]
    paths[0].write_text(f'{caption}\n\n{shown.to_markdown(index=False)}\n')
    paths[1].write_text(shown.to_latex(index=False, escape=True, caption=caption.split('\n')[0],
                                       label=f'tab:{name}').replace('±', r'$\pm$'))
    numeric.to_csv(paths[2], index=False, float_format='%.4f')
    return paths
