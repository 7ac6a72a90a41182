"""Score tables of stored results (pandas): one long frame, mean +- std over seeds, writers.

Std is the sample standard deviation over seeds (ddof=1); with one seed it is left blank.
"""
from pathlib import Path

import pandas as pd

from ..data.bcss_meta import TISSUE_CLASSES
from ..runner.plan import ABLATIONS, MAIN_GROUP, METHOD_LABELS, METHODS

SCORES = (*TISSUE_CLASSES, 'mIoU', 'mDice', 'FwIoU')
GATING_LABELS = {'oracle': 'oracle (image labels from the GT mask)',
                 'predicted': 'predicted (classifier probability > threshold)'}
PROTOCOL_LABELS = {'bg_counted': 'paper (BG counted)', 'bg_ignored': 'MLPS (BG pixels ignored)'}
ROW_LABELS = {**METHOD_LABELS, 'label_only': 'Label-only reference (oracle labels, no training)'}


def score_rows(result) -> list:
    """One row per (gating, protocol) of a result: identifiers + per-class IoU and the means."""
    rows = []
    for gating, protocols in result['metrics']['results'].items():
        for protocol, block in protocols.items():
            row = {'run_id': result['run_id'], 'method': result['method'], 'seed': result['seed'],
                   'gating': gating, 'protocol': protocol}
            row.update({c: block['IoU'].get(c) for c in TISSUE_CLASSES})
            row.update({k: block.get(k) for k in ('mIoU', 'mDice', 'FwIoU')})
            rows.append(row)
    return rows


def scores_frame(results) -> pd.DataFrame:
    """Long frame of every result's scores, plus one row per (result, group membership)."""
    rows = []
    for result in results:
        for membership in result.get('memberships') or _legacy_memberships(result):
            rows += [{**row, 'group': membership['name'], 'value': membership['value']}
                     for row in score_rows(result)]
    columns = ['run_id', 'method', 'seed', 'gating', 'protocol', 'group', 'value', *SCORES]
    frame = pd.DataFrame(rows, columns=columns)
    frame[list(SCORES)] = frame[list(SCORES)].astype(float)
    return frame


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
        shown[column] = [pm(m, s) for m, s in zip(stats[f'{column}_mean'], stats[f'{column}_std'])]
    shown['seeds'] = ['-' if pd.isna(n) or n == 0 else int(n) for n in stats['seeds']]
    return shown


def main_table(frame: pd.DataFrame, reference: pd.DataFrame = None) -> pd.DataFrame:
    """Methods x gating x protocol (numeric mean/std), the label-only reference appended."""
    main = frame[frame['group'] == MAIN_GROUP]
    stats = mean_std(main, ['gating', 'protocol', 'method'])
    if reference is not None and len(reference):
        stats = pd.concat([stats, reference], ignore_index=True)
    order = {m: i for i, m in enumerate([*METHODS, 'label_only'])}
    stats = stats.sort_values(['gating', 'protocol', 'method'],
                              key=lambda s: s.map(order) if s.name == 'method' else s)
    stats.insert(0, 'Method', stats['method'].map(ROW_LABELS))
    stats.insert(0, 'Protocol', stats['protocol'].map(PROTOCOL_LABELS))
    stats.insert(0, 'Gating', stats['gating'].map(GATING_LABELS))
    return stats.reset_index(drop=True)


def ablation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every ablation point, paper protocol, both gatings side by side (numeric mean/std)."""
    rows = frame[(frame['group'].isin(ABLATIONS)) & (frame['protocol'] == 'bg_counted')]
    stats = mean_std(rows, ['group', 'value', 'gating'],
                     columns=('mIoU', 'mDice'))
    run_ids = rows.groupby(['group', 'value'], sort=False)['run_id'].agg(
        lambda ids: ', '.join(sorted({i.rsplit('__seed', 1)[0] for i in ids})))
    wide = stats.pivot(index=['group', 'value'], columns='gating',
                       values=['mIoU_mean', 'mIoU_std', 'mDice_mean', 'mDice_std', 'seeds'])
    wide.columns = [f'{gating}_{name}' for name, gating in wide.columns]
    wide = wide.reset_index()
    wide['runs'] = [run_ids[(g, v)] for g, v in zip(wide['group'], wide['value'])]
    group_order = {g: i for i, g in enumerate(ABLATIONS)}
    point_order = {(p.group, str(p.value)): i for points in ABLATIONS.values()
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
