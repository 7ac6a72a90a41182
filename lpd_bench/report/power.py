"""The power check of the report (``power.md``, ``power.csv``; docs/protocol.md, "Power check").

Can the benchmark's statistics (:mod:`.stats`) see a difference that is known to be there, and do
they keep quiet where there is none? Paper protocol throughout: variant ``oracle`` (no CRF),
background ``bg_counted``, last checkpoint; the image resamples are the report's (one
:class:`.stats.Bootstrap` shared with every other comparison).

a. Planted differences (family ``planted``): every point of every check group
   (``MethodSpec.checks``, e.g. LPD's ``power``: a quarter or an eighth of the schedule,
   prototypes frozen at their initialisation) against the group's default point (``full``, the
   default run), paired over the same test images and seeds (:func:`.stats.compare`), Holm over
   the family. Every non-default point of a check group is a known-worse variant: it is
   **detected** when it comes out significantly worse (Holm-adjusted p < 0.05 and
   point − default < 0).
b. Null check, seeds: for every registered method with several seeds of its default run,
   (i) family ``null_pairs``: every pair of single seeds, seed i − seed j, paired over the test
   images only (one run per side: the training noise is not in the interval, so a real
   seed-to-seed difference IS flagged); (ii) family ``null_halves``, for a method with at least
   :data:`MIN_HALVES_SEEDS` seeds: its first half of seeds against its second half, paired by
   position, bootstrap over images x seed positions as every other comparison. Both arms train
   the same configuration, so (ii) must mostly come out not significant. Holm within each family.
c. What is missing (runs, per-image data) is listed with the command that makes it.

Runs are found by run id (``<stem>__seed<S>``, the plan's ids), not by the result's
``memberships``: a run made by ``lpd-bench run lpd`` serves as the check group's ``full`` point and
as the method's default run alike.
"""
import json
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ..methods import (check_groups, get_method, group_default, group_titles, method_names,
                       registered_methods)
from ..runner.plan import build_plan
from . import stats
from .uncertainty import is_yes

VARIANT = 'oracle'
PROTOCOL = 'bg_counted'
#: A method needs this many seeds for the seed-halves null check (two halves of >= 2 seeds).
MIN_HALVES_SEEDS = 4
#: The commands that make the check's runs (the preset's and data's options are appended).
POWER_COMMAND = 'lpd-bench run power --seeds 0 1 2'
NULL_COMMAND = 'lpd-bench run lpd cam --seeds 0 1 2 3 4 5'
FAMILIES = ('planted', 'null_pairs', 'null_halves')
DETECTED, NOT_DETECTED = 'detected', 'not detected'
COLUMNS = ['family', 'group', 'a', 'b', 'runs_a', 'runs_b', 'difference', 'lo', 'hi', 'p',
           'p_empirical', 'p_holm', 'significant', 'verdict', 'images', 'seeds', 'note']


def run_stem(run_id: str) -> str:
    """The run id without its ``__seed<S>`` suffix (the plan's ids)."""
    return run_id.rsplit('__seed', 1)[0]


@dataclass
class PowerCheck:
    """What :func:`analyse` found: one frame of every comparison (:data:`COLUMNS`) and the lines
    saying which runs to make."""
    rows: pd.DataFrame
    missing: list = field(default_factory=list)
    images: int = 0

    def family(self, name) -> pd.DataFrame:
        return self.rows[self.rows['family'] == name]

    def share_not_significant(self, name):
        """(not significant, tested) of a family (Holm 0.05)."""
        tested = self.family(name).dropna(subset=['p'])
        return int(sum(not is_yes(s) for s in tested['significant'])), len(tested)

    def detected(self):
        """(detected, tested, planted points) of the planted family."""
        rows = self.family('planted')
        return (int((rows['verdict'] == DETECTED).sum()), int((~rows['p'].isna()).sum()),
                len(rows))


def _command(base, results, work_dir=None) -> str:
    """``base`` with the data set, preset, data root and work dir of the stored results, when
    they are not the defaults."""
    from ..methods import DEFAULT_DATASET
    from ..runner.commands import default_work_dir
    datasets = {r.get('dataset') for r in results} - {None, DEFAULT_DATASET}
    presets = {r.get('preset') for r in results} - {None, 'cpu'}
    roots = {r.get('data_root') for r in results} - {None}
    extra = ([f'--dataset {d}' for d in sorted(datasets)[:1]]
             + [f'--preset {p}' for p in sorted(presets)[:1]]
             + [f'--data {d}' for d in sorted(roots)[:1]])
    default = default_work_dir(next(iter(sorted(datasets)), DEFAULT_DATASET))
    if work_dir is not None and Path(work_dir).resolve() != Path(default).resolve():
        extra.append(f'--work-dir {work_dir}')
    return ' '.join([base, *extra])


def _other_options(result, ignored) -> str:
    """The run's cfg-options besides its point's own, its seed and its pre-stages' outputs."""
    options = {k: v for k, v in (result.get('cfg_options') or {}).items()
               if k not in ignored and k != 'randomness.seed'}
    return json.dumps(sorted(options.items()), default=str)


def _row(boot, family, group, a, runs_a, b, runs_b, note=''):
    row = {'family': family, 'group': group, 'a': a, 'b': b,
           'runs_a': ', '.join(run for _, run in runs_a),
           'runs_b': ', '.join(run for _, run in runs_b), 'note': note}
    if not runs_a or not runs_b:
        return {**row, 'note': note or 'missing runs'}
    found = None if boot is None else stats.compare(boot, runs_a, VARIANT, runs_b, VARIANT,
                                                    PROTOCOL)
    if found is None:
        return {**row, 'note': note or stats.NO_PER_IMAGE}
    return {**row, **asdict(found)}


def _planted(results, boot, by_stem, missing, work_dir):
    rows = []
    for group, points in check_groups().items():
        default = str(group_default(points))
        stems = {}  # str(value) -> run stem
        for spec in build_plan([group], seeds=[0]):
            for membership in spec.memberships:
                if membership['name'] == group:
                    stems[str(membership['value'])] = run_stem(spec.run_id)
        runs = {value: sorted(by_stem.get(stem, {}).items()) for value, stem in stems.items()}
        absent = [stems[str(p.value)] for p in points if not runs[str(p.value)]]
        if absent:
            missing.append(f'check group `{group}`: no runs of {", ".join(absent)}; make them '
                           f'with `{_command(POWER_COMMAND, results, work_dir)}`.')
        owner = get_method(points[0].method)
        ignored = {key for p in points for key, _ in p.overrides}
        ignored |= {s.config_key for s in (*owner.pre_stages, *owner.post_stages)
                    if s.config_key}
        for point in points:
            value = str(point.value)
            if value == default:
                continue
            pairs = [(seed, result['run_id']) for seed, result in runs[value]]
            base = [(seed, result['run_id']) for seed, result in runs[default]]
            options = {_other_options(r, ignored) for _, r in runs[value] + runs[default]}
            note = ('the runs differ in other --cfg-options' if len(options) > 1 else '')
            rows.append(_row(boot, 'planted', group, value, pairs, default, base, note))
    return rows


def _null(results, boot, by_stem, missing, work_dir):
    pairs_rows, halves_rows = [], []
    for method in method_names():
        seeds = sorted(by_stem.get(method, {}).items())
        runs = [(seed, result['run_id']) for seed, result in seeds]
        for (seed_i, run_i), (seed_j, run_j) in combinations(runs, 2):
            pairs_rows.append(_row(boot, 'null_pairs', method, f'seed {seed_i}', [(0, run_i)],
                                   f'seed {seed_j}', [(0, run_j)]))
        if len(runs) >= MIN_HALVES_SEEDS:
            half = len(runs) // 2
            first = [(i, run) for i, (_, run) in enumerate(runs[:half])]
            second = [(i, run) for i, (_, run) in enumerate(runs[half:2 * half])]
            halves_rows.append(_row(
                boot, 'null_halves', method,
                'seeds ' + ' '.join(str(s) for s, _ in runs[:half]), first,
                'seeds ' + ' '.join(str(s) for s, _ in runs[half:2 * half]), second,
                note='' if len(runs) % 2 == 0 else f'seed {runs[-1][0]} left out (odd count)'))
    with_halves = [r for r in halves_rows if not pd.isna(r.get('p', np.nan))]
    if not with_halves:
        missing.append(f'null check: no method has {MIN_HALVES_SEEDS} or more seeds of its '
                       'default run with per-image data (the seed-halves check needs them); '
                       f'make them with `{_command(NULL_COMMAND, results, work_dir)}`.')
    return pairs_rows + halves_rows


def analyse(results, boot=None, work_dir=None) -> PowerCheck:
    """The power check of ``results`` (module docstring); ``boot``: the report's
    :class:`.stats.Bootstrap` (None: one is built from the results' per-image data);
    ``work_dir``: the results' work dir (named in the commands when not the default)."""
    if boot is None:
        from .uncertainty import per_image_data
        data = per_image_data(results)
        boot = stats.Bootstrap(data) if len(data) else None
    by_stem = {}  # stem -> {seed: result}
    for result in results:
        by_stem.setdefault(run_stem(result['run_id']), {})[result['seed']] = result
    missing = []
    rows = (_planted(results, boot, by_stem, missing, work_dir)
            + _null(results, boot, by_stem, missing, work_dir))
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS
                                        if c not in ('p_holm', 'significant', 'verdict')])
    frame = stats.add_holm(frame, 'family')
    frame['verdict'] = [
        ('' if family != 'planted' else
         '-' if pd.isna(p) else DETECTED if is_yes(s) and d < 0 else NOT_DETECTED)
        for family, p, s, d in zip(frame['family'], frame['p'], frame['significant'],
                                   frame['difference'])]
    frame = frame[COLUMNS]
    planted = frame[frame['family'] == 'planted']
    if len(planted) and planted['p'].isna().any() and not any('check group' in m
                                                               for m in missing):
        missing.append('planted differences without per-image data: rerun their runs in a '
                       f'fresh work dir (`{_command(POWER_COMMAND, results, work_dir)}`).')
    return PowerCheck(frame, missing, 0 if boot is None else len(boot.data))


def _number(value, digits=3) -> str:
    if pd.isna(value):
        return '-'
    return f'{value:.{digits}g}' if 0 < value < 1e-3 else f'{value:.{digits}f}'


def shown(rows: pd.DataFrame) -> pd.DataFrame:
    """The Markdown frame of one family."""
    planted = bool(len(rows)) and (rows['family'] == 'planted').all()
    names = group_titles() if planted else {s.name: s.short_label for s in registered_methods()}
    tested = ~rows['p'].isna()
    frame = pd.DataFrame({
        'Group' if planted else 'Method': [names.get(g, g) for g in rows['group']],
        'A': rows['a'], 'B': rows['b'],
        'A − B (mIoU)': [_number(d, 2) if t else '-' for d, t in zip(rows['difference'],
                                                                      tested)],
        '95% interval': [f'[{lo:.2f}, {hi:.2f}]' if t else '-'
                         for lo, hi, t in zip(rows['lo'], rows['hi'], tested)],
        'p': [_number(p) for p in rows['p']],
        'p (Holm)': [_number(p) for p in rows['p_holm']],
        'significant': ['yes' if is_yes(s) else 'no' if t else '-'
                        for s, t in zip(rows['significant'], tested)],
        'images x seeds': [f'{int(i)} x {s}' if t else '-'
                           for i, s, t in zip(rows['images'], rows['seeds'], tested)],
        'runs (A; B)': [f'{a or "-"}; {b or "-"}' for a, b in zip(rows['runs_a'],
                                                                   rows['runs_b'])],
        'note': rows['note'].fillna(''),
    })
    if planted:
        frame.insert(3, 'verdict', rows['verdict'].values)
    return frame


def summary(check: PowerCheck) -> list:
    """One line per part: planted detected, null shares."""
    detected, tested, planted = check.detected()
    untested = (f'; {planted - tested} of {planted} not tested (missing runs or per-image data)'
                if tested < planted else '')
    lines = [f'- Planted differences: {detected} of {tested} tested detected (significantly '
             f'worse than the default, Holm 0.05){untested}.' if planted else
             '- Planted differences: none registered.']
    for family, text in (('null_pairs', '(i) single-seed pairs'),
                         ('null_halves', '(ii) seed halves')):
        quiet, tested = check.share_not_significant(family)
        lines.append(f'- Null check {text}: {quiet} of {tested} not significant'
                     + (f' ({100 * quiet / tested:.0f}%).' if tested else ' (none tested).'))
    return lines


def markdown(check: PowerCheck, data_note='') -> str:
    quiet, halves = check.share_not_significant('null_halves')
    verdict_ii = ('passes (most halves not significant)' if halves and quiet > halves / 2 else
                  'FAILS (most halves significant)' if halves else 'not run')
    parts = [
        '# Power check', '',
        'Does the benchmark find a difference that is known to be there, and keep quiet where '
        'there is none? Paper protocol: oracle gating, no CRF, BG counted, last checkpoint; '
        f'mIoU differences (%) with their 95% paired bootstrap interval ({stats.RESAMPLES} '
        'resamples, the report\'s), two-sided p and Holm-adjusted p within each family '
        f'(significant: Holm p < {stats.ALPHA}); scheme: docs/protocol.md, "Power check". '
        f'{check.images} test images. {data_note}'.rstrip(), '',
        '## Summary', *summary(check), '']
    if check.missing:
        parts += ['## Missing', *[f'- {line}' for line in check.missing], '']
    planted = check.family('planted')
    parts += [
        '## a. Planted differences', '',
        'Every point of a check group (LPD\'s `power`: a quarter and an eighth of the training '
        'schedule, prototypes frozen at their initialisation) against the group\'s default '
        '(`full`, the default run), over the same test images and seeds. A planted point is '
        'known to be worse: **detected** when it comes out significantly worse (A − B < 0, Holm '
        'over this family). A benchmark that does not detect these cannot be trusted to rank '
        'methods whose differences are smaller.', '',
        shown(planted).to_markdown(index=False) if len(planted) else '(no check groups)', '']
    pairs, halves_rows = check.family('null_pairs'), check.family('null_halves')
    parts += [
        '## b. Null check: seeds of the same method', '',
        '(i) Every pair of single seeds of a method\'s default run (seed i − seed j), paired '
        'over the test images only. With one seed per side the interval ignores training '
        'noise, so this comparison is EXPECTED to flag real seed-to-seed differences: a '
        'significant pair says the two trained models differ on these images, not that the '
        'statistics are wrong. Holm within family `null_pairs`.', '',
        shown(pairs).to_markdown(index=False) if len(pairs) else
        '(no method has two or more seeds)', '',
        f'(ii) Seed halves, for every method with at least {MIN_HALVES_SEEDS} seeds: its first '
        'half of seeds against its second half, paired by position, bootstrap over the test '
        'images x seed positions, as every comparison between methods is made. Both sides are '
        'the same method, so THIS is the check that must mostly pass (not significant): '
        f'{verdict_ii}. Holm within family `null_halves`.', '',
        shown(halves_rows).to_markdown(index=False) if len(halves_rows) else
        f'(no method has {MIN_HALVES_SEEDS} or more seeds)', '']
    return '\n'.join(parts) + '\n'


def write(check: PowerCheck, out_dir, data_note='') -> list:
    """``power.md`` and ``power.csv`` (every comparison, numeric) in ``out_dir``."""
    out = Path(out_dir)
    md, csv = out / 'power.md', out / 'power.csv'
    md.write_text(markdown(check, data_note))
    check.rows.to_csv(csv, index=False, float_format='%.6g')
    return [md, csv]
