"""`lpd-bench report` from the stored-results fixture (tests/fixtures/results).

The fixture mixes current results (CRF variants, three background protocols, 5-class FwIoU,
``metrics_by_checkpoint`` with a best) and old ones (``cam``, ``lpd__norefiner``: no CRF, no
``bg_from_gt``, tissue-only ``FwIoU``, no ``metrics_by_checkpoint``); see make_fixture.py.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpd_bench.cli import main as cli_main
from lpd_bench.evaluation import wsss_metric
from lpd_bench.methods import get_method
from lpd_bench.report import tables
from lpd_bench.report.build import ReportError, build_report
from lpd_bench.report.reference import (PUBLISHED, label_only_prediction, label_only_scores,
                                        published_table)
from lpd_bench.report.tables import (ablation_table, block_scores, checkpoints_table, main_table,
                                     scores_frame)
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


def block(work_dir, run_id, variant, protocol, checkpoint='last'):
    result = stored(work_dir, run_id)
    metrics = result['metrics'] if checkpoint == 'last' else \
        result['metrics_by_checkpoint'][checkpoint]
    return metrics['results'][variant][protocol]


def test_report_writes_every_table_figure_and_readme(work_dir, tmp_path):
    out = tmp_path / 'reports'
    assert cli_main(['report', '--work-dir', str(work_dir), '--out', str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for table in ('main_results', 'protocols', 'checkpoints', 'ablations', 'cost', 'published'):
        assert {f'{table}.md', f'{table}.tex', f'{table}.csv'} <= names
    assert {'ablation_num_per_class.png', 'ablation_diversity_weight.png', 'qualitative.png',
            'prototype_maps.png', 'README.md'} <= names
    readme = (out / 'README.md').read_text()
    assert 'synthetic data' in readme and 'version 1, seed 7' in readme
    assert 'Seeds: [0, 1]' in readme and 'oracle' in readme
    assert '(besides the seed): none.' in readme
    assert 'last `lpd-bench run`: not recorded' in readme
    # the protocol section: three background conventions, CRF, gating, checkpoint, FwIoU
    for text in ('`bg_counted`', '`bg_ignored`', '`bg_from_gt`', 'pred[gt == 4] = 4',
                 'sxy 10 / srgb 20 / compat 50', '`test_cfg.gating_threshold` (recorded: 0.5;',
                 'mean-merged stage-4', 'LAST checkpoint', 'FwIoU tissue (ours)',
                 'background included', '14 of 17 stored results have CRF variants',
                 'for the 12 of 17 results that recorded one', 'k = 1 point has no mask refiner',
                 'CRF does not apply'):
        assert text in readme, text
    assert '## Main results: mIoU under every protocol' in readme
    assert 'PUBLISHED' in (out / 'published.md').read_text()
    assert r'$\pm$' in (out / 'main_results.tex').read_text()
    assert 'Last checkpoint' in (out / 'main_results.md').read_text()


def test_readme_states_the_plan_wall_time(work_dir, tmp_path):
    (work_dir / 'plan_wall.json').write_text(json.dumps(
        {'wall_s': 754.2, 'runs': 13, 'executed': 12, 'skipped': 1, 'failed': 0, 'jobs': 2,
         'threads': 1, 'seeds': [0]}))
    (tmp_path / 'reports').mkdir()
    (tmp_path / 'reports' / 'crf_cost.md').write_text('\n# DenseCRF cost\n\nrest\n')
    build_report(work_dir, tmp_path / 'reports')
    readme = (tmp_path / 'reports' / 'README.md').read_text()
    assert '- [`crf_cost.md`](crf_cost.md): DenseCRF cost' in readme
    assert '- [`main_results.md`](main_results.md): ' not in readme  # the report's own files
    assert ('12.6 min for 12 runs executed (1 skipped as done, 0 failed), 2 at a time with 1 '
            'thread(s) each, seeds [0]') in readme


def test_protocol_names_match_the_metric():
    assert tables.PROTOCOLS == wsss_metric.PROTOCOLS
    assert tables.MEANS == wsss_metric.MEANS


def test_main_table_mean_and_std_over_seeds(work_dir):
    frame = scores_frame(iter_results(work_dir))
    table = main_table(frame)
    row = table[(table['method'] == 'lpd') & (table['gating'] == 'predicted')
                & (table['crf'] == True) & (table['protocol'] == 'bg_from_gt')].iloc[0]  # noqa
    runs = [block(work_dir, f'lpd__seed{s}', 'predicted_crf', 'bg_from_gt') for s in (0, 1)]
    assert row['mIoU_mean'] == pytest.approx(np.mean([r['mIoU'] for r in runs]))
    assert row['mIoU_std'] == pytest.approx(np.std([r['mIoU'] for r in runs], ddof=1))
    assert row['LYM_mean'] == pytest.approx(np.mean([r['IoU']['LYM'] for r in runs]))
    assert row['BG_mean'] == pytest.approx(np.mean([r['IoU']['BG'] for r in runs]))
    assert row['FwIoU_tissue_mean'] == pytest.approx(np.mean([r['FwIoU_tissue'] for r in runs]))
    assert row['seeds'] == 2
    # pbip, lpd: 2 gatings x 2 CRF x 3 protocols; cam (old results): 2 gatings x 2 protocols.
    assert len(table) == 2 * 12 + 4
    # oracle + CRF + BG counted (the paper protocol) first; cam has no CRF rows
    assert list(table['method'][:2]) == ['pbip', 'lpd']
    assert list(table['CRF'][:2]) == ['CRF', 'CRF'] and table['protocol'][0] == 'bg_counted'
    no_crf = table[(table['gating'] == 'oracle') & (table['crf'] == False)]  # noqa: E712
    assert list(no_crf['method'][:3]) == ['cam', 'pbip', 'lpd']
    assert list(dict.fromkeys(no_crf['protocol'])) == ['bg_counted', 'bg_ignored', 'bg_from_gt']


def test_old_results_read_tissue_fwiou_and_recompute_the_five_class_one(work_dir):
    old = block(work_dir, 'cam__seed0', 'oracle', 'bg_counted')
    assert 'FwIoU_tissue' not in old
    scores = block_scores(old, 'bg_counted')
    assert scores['FwIoU_tissue'] == old['FwIoU']
    want = wsss_metric.protocol_scores(np.array(old['confusion']), 'bg_counted')
    assert scores['FwIoU'] == pytest.approx(want['FwIoU'])
    assert scores['FwIoU'] != pytest.approx(scores['FwIoU_tissue'])
    no_matrix = block(work_dir, 'lpd__norefiner__seed0', 'oracle', 'bg_counted')
    assert block_scores(no_matrix, 'bg_counted')['FwIoU'] is None
    current = block(work_dir, 'lpd__seed0', 'oracle', 'bg_counted')
    assert block_scores(current, 'bg_counted')['FwIoU'] == current['FwIoU']


def test_csv_matches_the_inputs(work_dir, tmp_path):
    build_report(work_dir, tmp_path / 'r')
    csv = pd.read_csv(tmp_path / 'r' / 'main_results.csv')
    row = csv[(csv['method'] == 'cam') & (csv['gating'] == 'oracle') & (csv['crf'] == False)  # noqa
              & (csv['protocol'] == 'bg_counted')].iloc[0]
    values = [block(work_dir, f'cam__seed{s}', 'oracle', 'bg_counted')['mDice'] for s in (0, 1)]
    assert row['mDice_mean'] == pytest.approx(np.mean(values), abs=1e-4)
    labels = csv[csv['method'] == 'label_only']
    assert set(labels['gating']) == {'oracle'} and len(labels) == 3
    assert labels['crf'].isna().all()
    md = (tmp_path / 'r' / 'main_results.md').read_text()
    assert f'{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}' in md
    assert 'n/a (no maps)' in md and 'GT BG copied into prediction' in md


def test_protocols_table_one_row_per_method_missing_is_a_dash(work_dir, tmp_path):
    build_report(work_dir, tmp_path / 'r')
    shown = (tmp_path / 'r' / 'protocols.md').read_text()
    csv = pd.read_csv(tmp_path / 'r' / 'protocols.csv').set_index('method')
    assert list(csv.index) == ['cam', 'pbip', 'lpd', 'label_only']
    assert csv.shape[1] == 12 * 2 + 1  # mean and std of 12 combinations, seeds
    lpd = [block(work_dir, f'lpd__seed{s}', 'oracle_crf', 'bg_counted')['mIoU'] for s in (0, 1)]
    assert csv.loc['lpd', 'oracle_crf_bg_counted_mIoU_mean'] == pytest.approx(np.mean(lpd),
                                                                              abs=1e-4)
    # cam's results are old: no CRF, no bg_from_gt; label-only: no CRF, no predicted gating
    assert np.isnan(csv.loc['cam', 'oracle_crf_bg_counted_mIoU_mean'])
    assert np.isnan(csv.loc['cam', 'oracle_bg_from_gt_mIoU_mean'])
    assert not np.isnan(csv.loc['cam', 'oracle_bg_ignored_mIoU_mean'])
    assert not np.isnan(csv.loc['label_only', 'oracle_bg_from_gt_mIoU_mean'])
    header = shown.splitlines()[2]
    assert header.index('oracle, CRF, BG counted') < header.index('oracle, no CRF, BG counted')
    cam = next(line for line in shown.splitlines() if line.startswith('| CAM'))
    cells = [c.strip() for c in cam.strip('|').split('|')]
    assert cells[1:4] == ['-', '-', '-'] and cells[6] == '-' and cells[4] != '-'
    label = next(line for line in shown.splitlines() if line.startswith('| Label-only'))
    cells = [c.strip() for c in label.strip('|').split('|')]
    assert cells[1:4] == ['n/a'] * 3 and cells[7:13] == ['n/a'] * 6 and cells[4] != '-'


def test_checkpoints_table_last_vs_best(work_dir):
    shown, numeric = checkpoints_table(scores_frame(iter_results(work_dir)))
    numeric = numeric.set_index('method')
    best = [block(work_dir, f'lpd__seed{s}', 'oracle_crf', 'bg_counted', 'best')['mIoU']
            for s in (0, 1)]
    last = [block(work_dir, f'lpd__seed{s}', 'oracle', 'bg_counted')['mIoU'] for s in (0, 1)]
    assert numeric.loc['lpd', 'best_oracle_crf_mIoU_mean'] == pytest.approx(np.mean(best))
    assert numeric.loc['lpd', 'last_oracle_mIoU_mean'] == pytest.approx(np.mean(last))
    assert numeric.loc['lpd', 'best_oracle_crf_seeds'] == 2
    assert np.isnan(numeric.loc['pbip', 'best_oracle_mIoU_mean'])  # best is null
    assert np.isnan(numeric.loc['cam', 'best_oracle_mIoU_mean'])  # old result: no record
    rows = shown.set_index('Method')
    assert rows.loc[get_method('pbip').label, 'best, CRF'] == '-'
    assert rows.loc['CAM', 'last, CRF'] == '-' and rows.loc['CAM', 'last, no CRF'] != '-'
    assert rows.loc['LPD', 'seeds (best)'] == 2 and rows.loc['CAM', 'seeds (best)'] == '-'
    assert list(rows.columns) == ['last, CRF', 'best, CRF', 'last, no CRF', 'best, no CRF',
                                  'seeds (last)', 'seeds (best)']


def test_ablation_table_rows_and_shared_runs(work_dir):
    table = ablation_table(scores_frame(iter_results(work_dir)))
    k_rows = table[table['group'] == 'num_per_class']
    assert list(k_rows['value']) == [1, 3, 5, 10]
    assert k_rows.iloc[3]['runs'] == 'lpd'  # the default run serves as k=10
    w_rows = table[table['group'] == 'diversity_weight']
    assert list(w_rows['value']) == [0, 0.1, 0.5]  # lambda=1 never finished (temp file only)
    refiner = table[(table['group'] == 'mask_refiner') & (table['value'] == 'without')].iloc[0]
    assert refiner['oracle_seeds'] == 1 and np.isnan(refiner['oracle_mIoU_std'])
    assert np.isnan(refiner['oracle_crf_mIoU_mean'])  # an old result: no CRF
    source = table[table['group'] == 'prototype_source']
    assert list(source['runs']) == ['lpd__k3', 'pbip']  # k=3 without diversity not run
    for variant in ('oracle', 'oracle_crf'):
        expected = np.mean([block(work_dir, f'lpd__k3__seed{s}', variant, 'bg_counted')['mIoU']
                            for s in (0, 1)])
        assert source.iloc[0][f'{variant}_mIoU_mean'] == pytest.approx(expected)


def test_ablation_markdown_labels_k1_and_shows_both_crf_settings(work_dir, tmp_path):
    build_report(work_dir, tmp_path / 'r')
    md = (tmp_path / 'r' / 'ablations.md').read_text()
    assert '| mIoU (oracle, CRF)' in md and '| mIoU (oracle, no CRF)' in md
    k1 = next(line for line in md.splitlines() if '| 1 (' in line)
    assert 'no refiner' in k1 and 'selects no prototype' in k1
    refiner = next(line for line in md.splitlines() if '| without' in line)
    assert [c.strip() for c in refiner.strip('|').split('|')][2] == '-'  # old result: no CRF


def test_published_table_states_each_sources_protocol():
    table = published_table().set_index(['Method', 'mIoU'])
    assert list(table.columns) == ['mDice', 'Gating', 'Background', 'CRF', 'Checkpoint', 'Seeds',
                                   'Source', 'Note']
    lpd = table.loc[('LPD', 71.96)]
    assert lpd['Gating'].startswith('oracle') and lpd['Background'].startswith('counted')
    assert lpd['CRF'].startswith('yes') and lpd['Checkpoint'] == 'last' and lpd['Seeds'] == '1'
    pbip = table.loc[('PBIP', 69.42)]
    assert 'argmax over 4 tissue maps' in pbip['Background'] and pbip['CRF'] == 'no'
    assert table.loc[('MLPS', 62.55), 'Background'] == 'GT BG copied into prediction'
    assert table.loc[('TPRO', 65.64), 'Gating'].startswith('predicted')
    third = table.loc[('CAM', 63.32)]
    assert (third[['Gating', 'Background', 'CRF', 'Checkpoint', 'Seeds']] == 'unstated').all()
    assert table.loc[('TGAP-Net', 72.1), 'Note'].startswith('same 4 classes')
    assert table.loc[('DualProtoSeg', 71.35), 'mDice'] == 83.14
    assert table.loc[('ConStruct', 70.96), 'mDice'] == 82.83
    assert 'PistoSeg' in {row['method'] for row in PUBLISHED}


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
    # val prior: STR most frequent. test t0 (TUM|STR halves, 128 px each) -> all STR;
    # t1 (64 LYM + 192 BG) -> LYM; t2 (256 BG) -> BG.
    scores = label_only_scores(FIXTURE / 'data').set_index('protocol')
    assert list(scores.index) == ['bg_counted', 'bg_ignored', 'bg_from_gt']
    assert scores['crf'].isna().all() and set(scores['gating']) == {'oracle'}
    counted = scores.loc['bg_counted']
    assert counted['TUM_mean'] == 0.0
    assert counted['STR_mean'] == pytest.approx(100 * 128 / 256)
    assert counted['LYM_mean'] == pytest.approx(100 * 64 / 256)  # 192 BG pixels predicted LYM
    assert counted['BG_mean'] == pytest.approx(100 * 256 / 448)
    # FwIoU: (128 * 0 + 128 * 50 + 64 * 25 + 448 * 400/7) / 768; tissue only: 8000 / 320
    assert counted['FwIoU_mean'] == pytest.approx(33600 / 768)
    assert counted['FwIoU_tissue_mean'] == pytest.approx(25.0)
    assert scores.loc['bg_ignored', 'LYM_mean'] == pytest.approx(100.0)
    assert np.isnan(scores.loc['bg_ignored', 'BG_mean'])
    from_gt = scores.loc['bg_from_gt']  # all 448 BG pixels copied in: BG IoU 100
    assert from_gt['LYM_mean'] == pytest.approx(100.0) and from_gt['BG_mean'] == pytest.approx(100)
    assert from_gt['mIoU_mean'] == pytest.approx(50.0)
    assert from_gt['FwIoU_mean'] == pytest.approx((128 * 50 + 64 * 100 + 448 * 100) / 768)


def test_no_results_and_mixed_data_roots_are_errors(work_dir, tmp_path):
    with pytest.raises(ReportError, match='no complete results'):
        build_report(tmp_path / 'empty', tmp_path / 'r')
    path = work_dir / 'runs' / 'cam__seed0' / 'result.json'
    path.write_text(path.read_text().replace(str(FIXTURE / 'data'), '/elsewhere'))
    with pytest.raises(ReportError, match='different data roots'):
        build_report(work_dir, tmp_path / 'r')


def test_method_readme_gets_its_results_block_and_keeps_the_rest(work_dir, tmp_path):
    from lpd_bench.report.method_readmes import BEGIN, END
    readme = tmp_path / 'repo' / get_method('cam').readme
    readme.parent.mkdir(parents=True)
    readme.write_text(f'# CAM\nintro\n\n{BEGIN}\nold table\n{END}\n\nafter\n')
    written = build_report(work_dir, tmp_path / 'r', method_readmes_root=tmp_path / 'repo')
    assert readme in written
    text = readme.read_text()
    assert text.startswith('# CAM\nintro\n') and text.endswith(f'{END}\n\nafter\n')
    assert 'old table' not in text
    block = text[text.index(BEGIN):text.index(END)]
    assert '| Gating' in block and 'mIoU' in block and 'oracle' in block
    csv = pd.read_csv(tmp_path / 'r' / 'main_results.csv')
    cam = csv[(csv['method'] == 'cam') & (csv['gating'] == 'oracle')
              & (csv['protocol'] == 'bg_counted')].iloc[0]
    assert f'{cam["mIoU_mean"]:.2f}' in block
    pbip = tmp_path / 'repo' / get_method('pbip').readme
    assert not pbip.exists()  # no README there: nothing written
