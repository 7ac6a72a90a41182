"""The report's power check (lpd_bench/report/power.py): planted differences must be detected,
seeds of one method must mostly not differ, missing runs are named with their command."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpd_bench.models.spec import FROZEN_PROTOTYPES, SCHEDULE_FRACTION
from lpd_bench.report import power
from lpd_bench.report.build import build_report

FIXTURE = Path(__file__).parent / 'fixtures' / 'results'
IMAGES = 80


def _truth(rng, n=IMAGES):
    """Ground-truth pixel counts per image and class (n, 5): the test images all runs share."""
    return rng.multinomial(400, [0.25, 0.25, 0.15, 0.15, 0.2], size=n)


def _predict(rng, truth, quality):
    """Per-image 5x5 matrices: each ground-truth pixel predicted right with ``quality``."""
    out = np.zeros((len(truth), 5, 5), dtype=np.int64)
    for i, row in enumerate(truth):
        for c in range(5):
            p = np.full(5, (1 - quality) / 4)
            p[c] = quality
            out[i, c] = rng.multinomial(row[c], p)
    return out


def _result(run_id, method, seed, matrices, cfg_options=None):
    """A stored result with just what the power check reads (last checkpoint, per-image)."""
    names = [f'i{i}.png' for i in range(len(matrices))]
    return {'run_id': run_id, 'method': method, 'seed': seed, 'preset': 'cpu',
            'data_root': None, 'cfg_options': dict(cfg_options or {}),
            'metrics': {'per_image': {'names': names,
                                      'confusion': {'oracle': matrices.tolist()}}}}


def _seeds(rng, truth, stem, method, qualities, cfg_options=None):
    return [_result(f'{stem}__seed{seed}', method, seed, _predict(rng, truth, quality),
                    cfg_options) for seed, quality in enumerate(qualities)]


def test_planted_worse_point_is_detected_and_an_identical_one_is_not():
    rng = np.random.default_rng(0)
    truth = _truth(rng)
    results = (_seeds(rng, truth, 'lpd', 'lpd', [0.8] * 3)
               + _seeds(rng, truth, 'lpd__quarter', 'lpd', [0.65] * 3,
                        {SCHEDULE_FRACTION: 0.25})  # clearly worse
               + _seeds(rng, truth, 'lpd__eighth', 'lpd', [0.6] * 3,
                        {SCHEDULE_FRACTION: 0.125})  # clearly worse
               + _seeds(rng, truth, 'lpd__frozenproto', 'lpd', [0.8] * 3,
                        {FROZEN_PROTOTYPES: True}))  # same distribution as full
    check = power.analyse(results)
    planted = check.family('planted').set_index('a')
    assert set(planted.index) == {'quarter schedule', 'eighth schedule', 'frozen prototypes'}
    assert (planted['b'] == 'full').all() and (planted['seeds'] == '3 paired').all()
    quarter, frozen = planted.loc['quarter schedule'], planted.loc['frozen prototypes']
    assert quarter['verdict'] == power.DETECTED
    assert quarter['difference'] < 0 and quarter['hi'] < 0 and quarter['p_holm'] < 0.05
    assert frozen['verdict'] == power.NOT_DETECTED and not frozen['significant']
    assert frozen['lo'] < 0 < frozen['hi']
    assert planted.loc['eighth schedule', 'verdict'] == power.DETECTED
    assert check.detected() == (2, 3, 3)
    assert not any('check group' in line for line in check.missing)


def test_a_planted_point_better_than_the_default_is_not_detected():
    rng = np.random.default_rng(1)
    truth = _truth(rng)
    results = (_seeds(rng, truth, 'lpd', 'lpd', [0.7] * 2)
               + _seeds(rng, truth, 'lpd__quarter', 'lpd', [0.85] * 2)
               + _seeds(rng, truth, 'lpd__frozenproto', 'lpd', [0.55] * 2))
    planted = power.analyse(results).family('planted').set_index('a')
    assert planted.loc['quarter schedule', 'significant']  # significant, but the wrong way
    assert planted.loc['quarter schedule', 'verdict'] == power.NOT_DETECTED
    assert planted.loc['frozen prototypes', 'verdict'] == power.DETECTED


def test_seed_halves_of_identical_seeds_are_mostly_not_significant():
    rng = np.random.default_rng(2)
    truth = _truth(rng)
    results = [r for method in ('lpd', 'cam', 'pbip')
               for r in _seeds(rng, truth, method, method, [0.8] * 6)]
    check = power.analyse(results)
    halves = check.family('null_halves')
    assert sorted(halves['group']) == ['cam', 'lpd', 'pbip']
    assert (halves['seeds'] == '3 paired').all()  # paired by position, 3 per half
    assert (halves['a'] == 'seeds 0 1 2').all() and (halves['b'] == 'seeds 3 4 5').all()
    quiet, tested = check.share_not_significant('null_halves')
    assert tested == 3 and quiet > tested / 2
    pairs = check.family('null_pairs')
    assert len(pairs) == 3 * 15 and (pairs['seeds'] == '1 paired').all()
    quiet, tested = check.share_not_significant('null_pairs')
    assert tested == 45 and quiet > tested / 2
    assert not any('null check' in line for line in check.missing)
    text = power.markdown(check)
    assert 'passes' in text and 'ignores training noise' in text


def test_single_seed_pairs_flag_a_real_seed_difference_that_the_halves_average_out():
    rng = np.random.default_rng(3)
    truth = _truth(rng)
    results = _seeds(rng, truth, 'lpd', 'lpd', [0.7, 0.9, 0.7, 0.9])
    check = power.analyse(results)
    pairs = check.family('null_pairs').set_index(['a', 'b'])
    assert pairs.loc[('seed 0', 'seed 1'), 'significant']  # the two trained models differ
    assert not pairs.loc[('seed 0', 'seed 2'), 'significant']
    halves = check.family('null_halves')
    assert len(halves) == 1 and not halves['significant'].iloc[0]


def test_odd_seed_count_leaves_the_last_seed_out_of_the_halves():
    rng = np.random.default_rng(4)
    truth = _truth(rng, 20)
    check = power.analyse(_seeds(rng, truth, 'lpd', 'lpd', [0.8] * 5))
    halves = check.family('null_halves').iloc[0]
    assert halves['runs_a'] == 'lpd__seed0, lpd__seed1'
    assert halves['runs_b'] == 'lpd__seed2, lpd__seed3' and 'seed 4 left out' in halves['note']


def test_missing_runs_are_named_with_their_commands(tmp_path):
    rng = np.random.default_rng(5)
    truth = _truth(rng, 20)
    check = power.analyse(_seeds(rng, truth, 'lpd', 'lpd', [0.8] * 2))
    planted = check.family('planted')
    assert planted['p'].isna().all() and (planted['verdict'] == '-').all()
    assert (planted['note'] == 'missing runs').all()
    missing = '\n'.join(check.missing)
    assert f'`{power.POWER_COMMAND}`' in missing and f'`{power.NULL_COMMAND}`' in missing
    assert power.POWER_COMMAND == 'lpd-bench run power --seeds 0 1 2'
    assert power.NULL_COMMAND == 'lpd-bench run lpd cam --seeds 0 1 2 3 4 5'
    written = power.write(check, tmp_path)
    assert [p.name for p in written] == ['power.md', 'power.csv']
    assert '## Missing' in written[0].read_text()
    csv = pd.read_csv(written[1])
    assert set(csv['family']) == {'planted', 'null_pairs'}


def test_report_writes_the_power_section(tmp_path):
    work = tmp_path / 'work'
    shutil.copytree(FIXTURE / 'work_dir', work)
    for path in work.glob('runs/*/result.json'):
        path.write_text(path.read_text().replace('@DATA@', str(FIXTURE / 'data')))
    written = build_report(work, tmp_path / 'r')
    assert tmp_path / 'r' / 'power.md' in written and tmp_path / 'r' / 'power.csv' in written
    text = (tmp_path / 'r' / 'power.md').read_text()
    assert power.POWER_COMMAND in text and power.NULL_COMMAND in text  # the fixture has neither
    assert f'--work-dir {work}' in text  # not the default work dir: named
    readme = (tmp_path / 'r' / 'README.md').read_text()
    assert '## Power check' in readme and '(power.md)' in readme
    csv = pd.read_csv(tmp_path / 'r' / 'power.csv')
    lpd = csv[(csv['family'] == 'null_pairs') & (csv['group'] == 'lpd')]
    assert len(lpd) == 1 and not np.isnan(lpd['p'].iloc[0])  # lpd seeds 0, 1 with per-image


@pytest.mark.parametrize('run_id, stem', [('lpd__seed0', 'lpd'),
                                          ('lpd__k3__nodiv__seed12', 'lpd__k3__nodiv')])
def test_run_stem(run_id, stem):
    assert power.run_stem(run_id) == stem
