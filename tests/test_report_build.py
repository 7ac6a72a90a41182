"""`lpd-bench report` from the stored-results fixture (tests/fixtures/results)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpd_bench.cli import main as cli_main
from lpd_bench.report.build import ReportError, build_report
from lpd_bench.report.reference import label_only_prediction, label_only_scores
from lpd_bench.report.tables import ablation_table, main_table, scores_frame
from lpd_bench.runner.results import iter_results

FIXTURE = Path(__file__).parent / 'fixtures' / 'results'


@pytest.fixture
def work_dir(tmp_path):
    """The fixture's work dir with ``data_root`` pointing at the fixture's data."""
    work = tmp_path / 'work'
    shutil.copytree(FIXTURE / 'work_dir', work)
    for path in work.glob('runs/*/result.json'):
        path.write_text(path.read_text().replace('@DATA@', str(FIXTURE / 'data')))
    return work


def stored(work_dir, run_id):
    return json.loads((work_dir / 'runs' / run_id / 'result.json').read_text())


def test_report_writes_every_table_figure_and_readme(work_dir, tmp_path):
    out = tmp_path / 'reports'
    assert cli_main(['report', '--work-dir', str(work_dir), '--out', str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for table in ('main_results', 'ablations', 'cost', 'published'):
        assert {f'{table}.md', f'{table}.tex', f'{table}.csv'} <= names
    assert {'ablation_num_per_class.png', 'ablation_diversity_weight.png', 'qualitative.png',
            'prototype_maps.png', 'README.md'} <= names
    readme = (out / 'README.md').read_text()
    assert 'synthetic data' in readme and 'version 1, seed 7' in readme
    assert 'Seeds: [0, 1]' in readme and 'oracle' in readme
    assert '(besides the seed): none.' in readme
    assert 'last `lpd-bench run`: not recorded' in readme
    assert 'PUBLISHED' in (out / 'published.md').read_text()
    assert r'$\pm$' in (out / 'main_results.tex').read_text()


def test_readme_states_the_plan_wall_time(work_dir, tmp_path):
    (work_dir / 'plan_wall.json').write_text(json.dumps(
        {'wall_s': 754.2, 'runs': 13, 'executed': 12, 'skipped': 1, 'failed': 0, 'jobs': 2,
         'threads': 1, 'seeds': [0]}))
    build_report(work_dir, tmp_path / 'reports')
    readme = (tmp_path / 'reports' / 'README.md').read_text()
    assert ('12.6 min for 12 runs executed (1 skipped as done, 0 failed), 2 at a time with 1 '
            'thread(s) each, seeds [0]') in readme


def test_main_table_mean_and_std_over_seeds(work_dir):
    frame = scores_frame(iter_results(work_dir))
    table = main_table(frame)
    row = table[(table['method'] == 'lpd') & (table['gating'] == 'predicted')
                & (table['protocol'] == 'bg_ignored')].iloc[0]
    runs = [stored(work_dir, f'lpd__seed{s}')['metrics']['results']['predicted']['bg_ignored']
            for s in (0, 1)]
    assert row['mIoU_mean'] == pytest.approx(np.mean([r['mIoU'] for r in runs]))
    assert row['mIoU_std'] == pytest.approx(np.std([r['mIoU'] for r in runs], ddof=1))
    assert row['LYM_mean'] == pytest.approx(np.mean([r['IoU']['LYM'] for r in runs]))
    assert row['seeds'] == 2
    # 3 methods x 2 gatings x 2 protocols, in method order within each block.
    assert len(table) == 12
    assert list(table['method'][:3]) == ['cam', 'pbip', 'lpd']


def test_csv_matches_the_inputs(work_dir, tmp_path):
    build_report(work_dir, tmp_path / 'r')
    csv = pd.read_csv(tmp_path / 'r' / 'main_results.csv')
    row = csv[(csv['method'] == 'cam') & (csv['gating'] == 'oracle')
              & (csv['protocol'] == 'bg_counted')].iloc[0]
    values = [stored(work_dir, f'cam__seed{s}')['metrics']['results']['oracle']['bg_counted']
              ['mDice'] for s in (0, 1)]
    assert row['mDice_mean'] == pytest.approx(np.mean(values), abs=1e-4)
    labels = csv[csv['method'] == 'label_only']
    assert set(labels['gating']) == {'oracle'} and len(labels) == 2
    md = (tmp_path / 'r' / 'main_results.md').read_text()
    assert f'{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}' in md


def test_ablation_table_rows_and_shared_runs(work_dir):
    table = ablation_table(scores_frame(iter_results(work_dir)))
    k_rows = table[table['group'] == 'num_per_class']
    assert list(k_rows['value']) == [1, 3, 5, 10]
    assert k_rows.iloc[3]['runs'] == 'lpd'  # the default run serves as k=10
    w_rows = table[table['group'] == 'diversity_weight']
    assert list(w_rows['value']) == [0, 0.1, 0.5]  # lambda=1 never finished (temp file only)
    refiner = table[(table['group'] == 'mask_refiner') & (table['value'] == 'without')].iloc[0]
    assert refiner['oracle_seeds'] == 1 and np.isnan(refiner['oracle_mIoU_std'])
    source = table[table['group'] == 'prototype_source']
    assert list(source['runs']) == ['lpd__k3', 'pbip']  # k=3 without diversity not run
    expected = np.mean([stored(work_dir, f'lpd__k3__seed{s}')['metrics']['results']['oracle']
                        ['bg_counted']['mIoU'] for s in (0, 1)])
    assert source.iloc[0]['oracle_mIoU_mean'] == pytest.approx(expected)


def test_cost_table_counts_both_pbip_stages(work_dir, tmp_path):
    build_report(work_dir, tmp_path / 'r')
    cost = pd.read_csv(tmp_path / 'r' / 'cost.csv').set_index('method')
    totals = [stored(work_dir, f'pbip__seed{s}')['cost']['total_wall_s'] for s in (0, 1)]
    assert cost.loc['pbip', 'total_wall_s_mean'] == pytest.approx(np.mean(totals), abs=1e-3)
    assert cost.loc['pbip', 'prototype_bank_wall_s_mean'] == 20.0
    assert cost.loc['lpd', 'prototype_bank_wall_s_mean'] == 0.0


def test_label_only_prediction_rule():
    mask = np.array([[0, 0, 1], [4, 4, 255]])
    assert (label_only_prediction(mask, ranking=[1, 0, 2, 3]) == 1).all()  # prior, not counts
    assert (label_only_prediction(np.full((2, 2), 4), ranking=[1, 0, 2, 3]) == 4).all()


def test_label_only_scores_on_fixture_masks():
    # val prior: STR most frequent. test t0 (TUM|STR halves) -> all STR; t1 (LYM + BG) -> LYM;
    # t2 (all BG) -> BG.
    scores = label_only_scores(FIXTURE / 'data').set_index('protocol')
    counted = scores.loc['bg_counted']
    assert counted['TUM_mean'] == 0.0
    assert counted['STR_mean'] == pytest.approx(100 * 128 / 256)
    assert counted['LYM_mean'] == pytest.approx(100 * 64 / 256)  # 192 BG pixels predicted LYM
    assert scores.loc['bg_ignored', 'LYM_mean'] == pytest.approx(100.0)


def test_no_results_and_mixed_data_roots_are_errors(work_dir, tmp_path):
    with pytest.raises(ReportError, match='no complete results'):
        build_report(tmp_path / 'empty', tmp_path / 'r')
    path = work_dir / 'runs' / 'cam__seed0' / 'result.json'
    path.write_text(path.read_text().replace(str(FIXTURE / 'data'), '/elsewhere'))
    with pytest.raises(ReportError, match='different data roots'):
        build_report(work_dir, tmp_path / 'r')
