"""Prototype specialisation in the report: the post-stage's NMI per run, as a table and a figure.

Each run with a ``specialisation`` stage (``lpd_bench.analysis.specialisation``) has a JSON with
the mean over classes of NMI(winning prototype; sub-morphology) and NMI(winning prototype;
position). The table lists every method's default run and every ablation point (mean ± std over
seeds); the figure puts the two NMIs side by side, so that prototypes that split by position (high
position NMI) are told apart from prototypes that follow the tissue's appearance.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..methods import MAIN_GROUP
from .tables import ordered_methods, pm, result_stage, row_labels

STAGE = 'specialisation'
KEYS = ('nmi_submorphology', 'nmi_position')


def specialisation_frame(results) -> pd.DataFrame:
    """One row per (run, group it belongs to) with a measured specialisation JSON."""
    rows = []
    for result in results:
        if result_stage(result) == 2:  # a stage-2 network has no prototypes
            continue
        stage = next((s for s in result['cost']['stages'] if s['name'] == STAGE), None)
        if stage is None or not Path(stage.get('path', '')).is_file():
            continue
        data = json.loads(Path(stage['path']).read_text())
        if not data.get('available'):
            continue
        for membership in result.get('memberships') or [{'name': MAIN_GROUP, 'value': None}]:
            rows.append({'method': result['method'], 'seed': result['seed'],
                         'group': membership['name'], 'value': str(membership['value']),
                         'k': data['num_per_class'],
                         **{key: data['mean'][key] for key in KEYS}})
    return pd.DataFrame(rows)


def specialisation_table(frame: pd.DataFrame):
    """(shown, numeric): mean ± std over seeds of both NMIs per (group, setting, method)."""
    grouped = frame.groupby(['group', 'value', 'method'], sort=False)
    numeric = grouped[list(KEYS)].agg(['mean', 'std'])
    numeric.columns = [f'{key}_{stat}' for key, stat in numeric.columns]
    numeric['k'] = grouped['k'].first()
    numeric['seeds'] = grouped['seed'].nunique()
    numeric = numeric.reset_index()
    order = {m: i for i, m in enumerate(ordered_methods(set(numeric['method'])))}
    numeric['_order'] = [(g != MAIN_GROUP, g, order[m]) for g, m in
                         zip(numeric['group'], numeric['method'])]
    numeric = numeric.sort_values('_order', kind='stable').drop(columns='_order')
    labels = row_labels()
    shown = pd.DataFrame({
        'Run': [labels.get(m, m) if g == MAIN_GROUP else f'{g} = {v}'
                for g, v, m in zip(numeric['group'], numeric['value'], numeric['method'])],
        'k': numeric['k'].astype(int),
        'NMI sub-morphology': [pm(m, s, 3) for m, s in zip(numeric['nmi_submorphology_mean'],
                                                             numeric['nmi_submorphology_std'])],
        'NMI position': [pm(m, s, 3) for m, s in zip(numeric['nmi_position_mean'],
                                                       numeric['nmi_position_std'])],
        'seeds': numeric['seeds']})
    return shown.reset_index(drop=True), numeric.reset_index(drop=True)


def specialisation_figure(shown: pd.DataFrame, numeric: pd.DataFrame, path) -> bool:
    """Grouped bars: NMI with the sub-morphology and with position, one pair per row."""
    if not len(numeric):
        return False
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    y = np.arange(len(numeric))
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(numeric) + 1.4))
    for offset, key, label in ((-0.2, 'nmi_submorphology', 'sub-morphology'),
                               (0.2, 'nmi_position', 'position (grid cells)')):
        ax.barh(y + offset, numeric[f'{key}_mean'], height=0.38,
                xerr=numeric[f'{key}_std'].fillna(0), label=label)
    ax.set_yticks(y, [f'{r} (k={k})' for r, k in zip(shown['Run'], shown['k'])], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel('NMI of the winning prototype within a class (mean over classes)')
    ax.set_title('What a class\'s prototypes follow (test split)', fontsize=10)
    ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
