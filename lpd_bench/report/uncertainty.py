"""Intervals and paired comparisons behind the report's tables (the scheme: :mod:`.stats`).

:func:`analyse` gathers, from the stored results and the long score frame, the runs of every main
method and ablation point (last checkpoint), their per-image matrices, and computes:

- ``intervals``: the 95% bootstrap interval of the seed-mean mIoU of every main method (and the
  label-only reference) under every variant and background protocol, and of every ablation
  point under every variant (paper background protocol);
- ``comparisons``: the paired comparisons, one Holm family per table: ``main`` (every pair of
  main methods, every variant both have, backgrounds ``bg_counted`` and ``bg_ignored``;
  ``bg_from_gt`` has the tissue mIoU of ``bg_ignored`` by construction, so it is not tested
  twice), ``stage2`` (the same pairs within the stage-2 block: the networks trained on each
  method's pseudo-masks, tested with no labels), ``ablations`` (every ablation point against its
  group's default, every variant both have, BG counted) and ``gating`` (each method's oracle
  minus predicted gating, BG counted, with and without CRF: what the oracle labels are worth to
  it).

A method's stage-1 runs and its stage-2 runs (:data:`.tables.STAGE2`) are kept apart: their
variants have different names (a stage-2 result's 'none' is 'stage2',
:func:`.tables.result_variant`) and :meth:`Uncertainty.runs` picks the stage-1 or the stage-2 runs by the variant, so that a
stage-1 and a stage-2 run of the same method and seed never pair with each other. The stage-2
comparisons are a Holm family of their own, so adding stage-2 results leaves the stage-1
significance as it was.

Comparisons without per-image data on either side are listed with no p-value, outside the
Holm families.
"""
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from ..methods import MAIN_GROUP, ablation_groups, group_default, registered_methods
from ..runner.results import checkpoint_metrics
from . import stats
from .tables import (PROTOCOLS, is_stage2_gating, ordered_methods, result_variant,
                     split_variant, variant_rank)

#: Background protocols the main family tests (module docstring).
MAIN_PROTOCOLS_COMPARED = ('bg_counted', 'bg_ignored')
#: Background protocol of the ablation table and its comparisons (paper protocol).
ABLATION_PROTOCOL = 'bg_counted'
FAMILIES = ('main', 'stage2', 'ablations', 'gating')
#: Families of comparisons between main methods (the main table's significance column).
MAIN_FAMILIES = ('main', 'stage2')
LABEL_ONLY = 'label_only'
COMPARISON_COLUMNS = ['family', 'group', 'a', 'b', 'variant_a', 'variant_b', 'protocol',
                      'difference', 'lo', 'hi', 'p', 'p_empirical', 'p_holm', 'significant',
                      'images', 'seeds', 'note']


def ordered_variants(variants) -> list:
    return sorted(variants, key=variant_rank)


def group_defaults() -> dict:
    """group -> str(value) of its default point: the owner's point whose overrides are the
    owner's config defaults (e.g. k = 10 for LPD), else the group's first point."""
    return {group: str(group_default(points)) for group, points in ablation_groups().items()}


def _runs(rows) -> list:
    """[(seed, run_id)] of frame rows, one per run."""
    pairs = rows[['seed', 'run_id']].drop_duplicates()
    return sorted(zip(pairs['seed'], pairs['run_id']), key=lambda r: str(r[0]))


def is_stage2_variant(variant) -> bool:
    return is_stage2_gating(split_variant(variant)[0])


def main_family(variant) -> str:
    """The Holm family of a comparison of two main methods under ``variant``."""
    return 'stage2' if is_stage2_variant(variant) else 'main'


def _common_variants(rows) -> set:
    """Variants present in every run of ``rows``."""
    sets = [set(v) for _, v in rows.groupby('run_id')['variant']]
    return set.intersection(*sets) if sets else set()


@dataclass
class Uncertainty:
    """What :func:`analyse` computed (module docstring); ``boot`` is None without any
    per-image data."""
    boot: object
    main_runs: dict = field(default_factory=dict)      # method -> [(seed, run_id)], stage 1
    stage2_runs: dict = field(default_factory=dict)    # method -> [(seed, run_id)], stage 2
    main_variants: dict = field(default_factory=dict)  # method -> {variant} (both stages)
    point_runs: dict = field(default_factory=dict)     # (group, str(value)) -> [(seed, run_id)]
    point_variants: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)       # group -> str(value)
    intervals: pd.DataFrame = None
    comparisons: pd.DataFrame = None

    @property
    def images(self) -> int:
        return 0 if self.boot is None else len(self.boot.data)

    def interval(self, scope, key, variant, protocol):
        """The interval row (a dict) of ``scope`` ('main': key = method; 'ablation': key =
        (group, str(value))), None when there is none."""
        rows = self.intervals
        if rows is None or rows.empty:
            return None
        hit = rows[(rows['scope'] == scope) & (rows['key'] == str(key))
                   & (rows['variant'] == variant) & (rows['protocol'] == protocol)]
        return hit.iloc[0].to_dict() if len(hit) else None

    def runs(self, scope, key, variant) -> list:
        """[(seed, run_id)] behind a row: a main method's stage-2 runs for a stage-2 variant,
        its stage-1 runs otherwise; an ablation point's runs."""
        if scope != 'main':
            return self.point_runs.get(key, [])
        return (self.stage2_runs if is_stage2_variant(variant) else self.main_runs).get(key, [])

    def has_per_image(self, scope, key, variant) -> bool:
        runs = self.runs(scope, key, variant)
        return self.boot is not None and self.boot.covers(runs, variant)


def per_image_data(results, label_only=None) -> stats.PerImageData:
    """The per-image matrices of every result's last-checkpoint metrics (and of the label-only
    reference: ``(names, matrices)``)."""
    data = stats.PerImageData()
    for result in results:
        metrics = checkpoint_metrics(result, 'last') or {}
        per_image = metrics.get('per_image')
        if per_image and per_image.get('confusion'):  # variants named as in the frame
            per_image = {**per_image, 'confusion': {
                result_variant(result, v): m for v, m in per_image['confusion'].items()}}
        data.add(result['run_id'], per_image)
    if label_only is not None:
        names, matrices = label_only
        data.add(LABEL_ONLY, {'names': names, 'confusion': {'oracle': matrices}})
    return data


def analyse(results, frame, label_only=None, resamples=stats.RESAMPLES,
            seed=stats.SEED) -> Uncertainty:
    """Intervals and comparisons of a report (module docstring). ``label_only``: the label-only
    reference's ``(names, per-image matrices)``, or None."""
    data = per_image_data(results, label_only)
    boot = stats.Bootstrap(data, resamples, seed) if len(data) else None
    unc = Uncertainty(boot, defaults=group_defaults())
    last = frame[frame['checkpoint'] == 'last']
    main = last[last['group'] == MAIN_GROUP]
    second = main['gating'].map(is_stage2_gating).astype(bool)
    for method in ordered_methods(set(main['method'])):
        first_rows = main[(main['method'] == method) & ~second]
        second_rows = main[(main['method'] == method) & second]
        unc.main_variants[method] = set()
        if len(first_rows):
            unc.main_runs[method] = _runs(first_rows)
            unc.main_variants[method] |= _common_variants(first_rows)
        if len(second_rows):
            unc.stage2_runs[method] = _runs(second_rows)
            unc.main_variants[method] |= _common_variants(second_rows)
    for group in ablation_groups():
        rows = last[(last['group'] == group) & (last['stage'] != 2)]
        for value in dict.fromkeys(rows['value']):
            picked = rows[rows['value'].astype(str) == str(value)]
            unc.point_runs[(group, str(value))] = _runs(picked)
            unc.point_variants[(group, str(value))] = _common_variants(picked)
    if label_only is not None:
        unc.main_runs[LABEL_ONLY] = [(0, LABEL_ONLY)]
        unc.main_variants[LABEL_ONLY] = {'oracle'}
    if boot is not None:  # every (run, variant) in one batched product
        boot.prepare([(key, variant) for key, variant in data.keys()])
    unc.intervals = _intervals(unc)
    unc.comparisons = _comparisons(unc)
    return unc


def _intervals(unc) -> pd.DataFrame:
    rows = []
    if unc.boot is None:
        return pd.DataFrame(rows, columns=['scope', 'key', 'variant', 'protocol', 'mIoU', 'lo',
                                           'hi', 'images', 'seeds'])
    targets = [('main', method, unc.runs('main', method, variant), variant, protocol)
               for method, variants in unc.main_variants.items()
               for variant in ordered_variants(variants) for protocol in PROTOCOLS]
    targets += [('ablation', key, runs, variant, ABLATION_PROTOCOL)
                for key, runs in unc.point_runs.items()
                for variant in ordered_variants(unc.point_variants[key])]
    for scope, key, runs, variant, protocol in targets:
        found = stats.interval(unc.boot, runs, variant, protocol)
        if found is not None:
            rows.append({'scope': scope, 'key': str(key), 'variant': variant,
                         'protocol': protocol, 'mIoU': found.mean, 'lo': found.lo,
                         'hi': found.hi, 'images': found.images, 'seeds': found.seeds})
    return pd.DataFrame(rows, columns=['scope', 'key', 'variant', 'protocol', 'mIoU', 'lo', 'hi',
                                       'images', 'seeds'])


def _compare(unc, family, group, a, runs_a, variant_a, b, runs_b, variant_b, protocol):
    row = {'family': family, 'group': group, 'a': a, 'b': b, 'variant_a': variant_a,
           'variant_b': variant_b, 'protocol': protocol}
    found = None if unc.boot is None else stats.compare(unc.boot, runs_a, variant_a, runs_b,
                                                        variant_b, protocol)
    if found is None:
        return {**row, 'note': stats.NO_PER_IMAGE}
    return {**row, **asdict(found), 'note': ''}


def _comparisons(unc) -> pd.DataFrame:
    rows = []
    methods = [m for m in unc.main_variants if m != LABEL_ONLY]
    for a, b in combinations(methods, 2):
        for variant in ordered_variants(unc.main_variants[a] & unc.main_variants[b]):
            for protocol in MAIN_PROTOCOLS_COMPARED:
                rows.append(_compare(unc, main_family(variant), MAIN_GROUP, a,
                                     unc.runs('main', a, variant), variant, b,
                                     unc.runs('main', b, variant), variant, protocol))
    for group, points in ablation_groups().items():
        default = (group, unc.defaults[group])
        if default not in unc.point_runs:
            continue
        for point in dict.fromkeys(str(p.value) for p in points):
            key = (group, point)
            if key == default or key not in unc.point_runs:
                continue
            for variant in ordered_variants(unc.point_variants[key]
                                            & unc.point_variants[default]):
                rows.append(_compare(unc, 'ablations', group, point, unc.point_runs[key],
                                     variant, default[1], unc.point_runs[default], variant,
                                     ABLATION_PROTOCOL))
    for method in methods:
        for crf in (True, False):
            oracle, predicted = ('oracle', 'predicted') if not crf else ('oracle_crf',
                                                                         'predicted_crf')
            if {oracle, predicted} <= unc.main_variants[method]:
                runs = unc.main_runs.get(method, [])
                rows.append(_compare(unc, 'gating', MAIN_GROUP, method, runs, oracle, method,
                                     runs, predicted, ABLATION_PROTOCOL))
    frame = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS
                                        if c not in ('p_holm', 'significant')])
    frame = stats.add_holm(frame, 'family')
    return frame[COMPARISON_COLUMNS]


def is_yes(flag) -> bool:
    """A ``significant`` cell that is true (bool, numpy bool; NaN: not tested)."""
    return not pd.isna(flag) and bool(flag)


def short_labels() -> dict:
    return {spec.name: spec.short_label for spec in registered_methods()}


def significance_text(unc, method, variant, protocol) -> str:
    """'> CAM, PBIP-style; < colour rule' from the main family's significant comparisons of
    ``method`` under ``variant``/``protocol`` (Holm, 0.05); 'none' when none is, '-' when no
    other method could be compared with it there; 'no per-image data' when it has none."""
    if method == LABEL_ONLY:
        return 'not compared'
    if not unc.has_per_image('main', method, variant):
        return stats.NO_PER_IMAGE
    rows = unc.comparisons
    protocol = stats.MIOU_PROTOCOLS.get(protocol, protocol)
    rows = rows[(rows['family'].isin(MAIN_FAMILIES)) & (rows['variant_a'] == variant)
                & (rows['protocol'] == protocol) & ~rows['p'].isna()
                & ((rows['a'] == method) | (rows['b'] == method))]
    if rows.empty:
        return '-'  # no other method with per-image data under this variant
    rows = rows[rows['significant'] == True]  # noqa: E712
    labels = short_labels()
    above, below = [], []
    for _, row in rows.iterrows():
        other = row['b'] if row['a'] == method else row['a']
        sign = np.sign(row['difference']) * (1 if row['a'] == method else -1)
        (above if sign > 0 else below).append(labels.get(other, other))
    parts = ([f'> {", ".join(above)}'] if above else []) + (
        [f'< {", ".join(below)}'] if below else [])
    return '; '.join(parts) or 'none'


def basis_text(unc, scope, key, variants) -> str:
    """How a row's uncertainty is stated: the interval's images x seeds, or the fallback
    (``variants`` of one stage: their runs are counted)."""
    variants = list(variants)
    runs = unc.runs(scope, key, variants[0]) if variants else []
    if any(unc.has_per_image(scope, key, v) for v in variants):
        seeds = len(runs)
        return (f'95% CI: {unc.images} test images' +
                (f' x {seeds} seeds' if seeds > 1 else ''))
    return f'± std over seeds ({stats.NO_PER_IMAGE})'


def annotate_main(table: pd.DataFrame, unc: Uncertainty) -> pd.DataFrame:
    """:func:`.tables.main_table`'s output with ``mIoU_lo``, ``mIoU_hi`` (95% interval, NaN
    without per-image data), ``compared`` (:func:`significance_text`) and ``interval_basis``."""
    table = table.copy()
    lo, hi, compared = [], [], []
    for method, gating, crf, protocol in zip(table['method'], table['gating'], table['crf'],
                                             table['protocol']):
        variant = gating + ('_crf' if crf is True or crf == 1.0 else '')
        found = unc.interval('main', method, variant, protocol)
        lo.append(found['lo'] if found else np.nan)
        hi.append(found['hi'] if found else np.nan)
        compared.append(significance_text(unc, method, variant, protocol))
    table['mIoU_lo'], table['mIoU_hi'], table['compared'] = lo, hi, compared
    table['interval_basis'] = [
        basis_text(unc, 'main', m, [v for v in unc.main_variants.get(m, ())
                                    if is_stage2_variant(v) == is_stage2_gating(g)])
        for m, g in zip(table['method'], table['gating'])]
    return table


def gating_gains(main: pd.DataFrame, unc: Uncertainty) -> pd.DataFrame:
    """Per method and CRF setting: oracle minus predicted mIoU (paper background protocol), with
    its paired interval and Holm-adjusted p (family ``gating``) where there is per-image data,
    else the difference of the table's seed means; ``text`` is the cell."""
    from .tables import interval_text
    rows = []
    comparisons = unc.comparisons
    counted = main[main['protocol'] == ABLATION_PROTOCOL]
    for method in dict.fromkeys(counted['method']):
        for crf in (True, False):
            def mean(gating):
                picked = counted[(counted['method'] == method) & (counted['gating'] == gating)
                                 & (counted['crf'].map(lambda c: c is True or c == 1.0) == crf)]
                return picked['mIoU_mean'].iloc[0] if len(picked) else np.nan
            found = comparisons[(comparisons['family'] == 'gating') & (comparisons['a'] == method)
                                & (comparisons['variant_a'] == ('oracle_crf' if crf
                                                                else 'oracle'))]
            if len(found) and not pd.isna(found['p'].iloc[0]):
                row = found.iloc[0]
                text = interval_text(row['difference'], row['lo'], row['hi'])
                text += ' *' if is_yes(row['significant']) else ''
                rows.append({'method': method, 'crf': crf, 'difference': row['difference'],
                             'lo': row['lo'], 'hi': row['hi'], 'p_holm': row['p_holm'],
                             'text': text})
                continue
            difference = mean('oracle') - mean('predicted')
            if not pd.isna(difference):
                rows.append({'method': method, 'crf': crf, 'difference': difference,
                             'lo': np.nan, 'hi': np.nan, 'p_holm': np.nan,
                             'text': f'{difference:.2f}'})
    return pd.DataFrame(rows, columns=['method', 'crf', 'difference', 'lo', 'hi', 'p_holm',
                                       'text'])


def annotate_ablations(wide: pd.DataFrame, unc: Uncertainty) -> pd.DataFrame:
    """:func:`.tables.ablation_table`'s output with, per variant, ``<variant>_mIoU_lo/_hi`` (95%
    interval) and the comparison with the group's default: ``<variant>_diff``, ``_diff_lo``,
    ``_diff_hi``, ``_p_holm``, ``_significant``; ``default`` marks the default points."""
    wide = wide.copy()
    variants = sorted({c[:-len('_mIoU_mean')] for c in wide if c.endswith('_mIoU_mean')},
                      key=variant_rank)
    comparisons = unc.comparisons[unc.comparisons['family'] == 'ablations']
    wide['default'] = [unc.defaults.get(g) == str(v) for g, v in zip(wide['group'],
                                                                     wide['value'])]
    wide['interval_basis'] = [basis_text(unc, 'ablation', (g, str(v)), variants)
                              for g, v in zip(wide['group'], wide['value'])]
    for variant in variants:
        columns = {name: [] for name in ('mIoU_lo', 'mIoU_hi', 'diff', 'diff_lo', 'diff_hi',
                                         'p_holm', 'significant')}
        for group, value in zip(wide['group'], wide['value']):
            found = unc.interval('ablation', (group, str(value)), variant, ABLATION_PROTOCOL)
            columns['mIoU_lo'].append(found['lo'] if found else np.nan)
            columns['mIoU_hi'].append(found['hi'] if found else np.nan)
            hit = comparisons[(comparisons['group'] == group) & (comparisons['a'] == str(value))
                              & (comparisons['variant_a'] == variant)]
            row = hit.iloc[0] if len(hit) else {}
            for name, source in (('diff', 'difference'), ('diff_lo', 'lo'), ('diff_hi', 'hi'),
                                 ('p_holm', 'p_holm'), ('significant', 'significant')):
                columns[name].append(row.get(source, np.nan) if len(hit) else np.nan)
        for name, values in columns.items():
            wide[f'{variant}_{name}'] = values
    return wide


def comparisons_shown(unc: Uncertainty) -> pd.DataFrame:
    """The Markdown frame of ``comparisons.md``: one row per comparison."""
    from ..methods import group_titles, setting_notes
    from .tables import PROTOCOL_SHORT, variant_label
    labels, titles, notes = short_labels(), group_titles(), setting_notes()
    rows = unc.comparisons

    def side(row, which):
        name = row[which]
        if row['family'] == 'ablations':
            return f'{titles.get(row["group"], row["group"])}: ' + notes.get(
                (row['group'], name), name)
        return labels.get(name, name)

    def variant(row):
        if row['variant_a'] == row['variant_b']:
            return variant_label(row['variant_a'])
        return f'{variant_label(row["variant_a"])} − {variant_label(row["variant_b"])}'

    def number(value, digits):
        return '-' if pd.isna(value) else (f'{value:.{digits}g}' if value < 1e-3 and value > 0
                                          else f'{value:.{digits}f}')

    tested = ~rows['p'].isna()
    return pd.DataFrame({
        'Family': rows['family'],
        'A': [side(r, 'a') for _, r in rows.iterrows()],
        'B': [side(r, 'b') if r['family'] != 'gating' else '(same runs)'
              for _, r in rows.iterrows()],
        'Variant': [variant(r) for _, r in rows.iterrows()],
        'Background': rows['protocol'].map(PROTOCOL_SHORT),
        'A − B (mIoU)': [f'{d:.2f}' if not pd.isna(d) else '-' for d in rows['difference']],
        '95% interval': [f'[{lo:.2f}, {hi:.2f}]' if t else '-'
                         for lo, hi, t in zip(rows['lo'], rows['hi'], tested)],
        'p': [number(p, 3) for p in rows['p']],
        'p (Holm)': [number(p, 3) for p in rows['p_holm']],
        'significant': ['yes' if is_yes(s) else 'no' if t else stats.NO_PER_IMAGE
                        for s, t in zip(rows['significant'], tested)],
        'images x seeds': [f'{int(i)} x {s}' if t else '-'
                           for i, s, t in zip(rows['images'], rows['seeds'], tested)],
    })
