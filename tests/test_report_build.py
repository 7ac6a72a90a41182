"""`lpd-bench report` from the stored-results fixture (tests/fixtures/results).

The fixture mixes current results (CRF variants, three background protocols, 5-class FwIoU,
``metrics_by_checkpoint`` with a best, per-image matrices of the 3 test images), current ones
without per-image matrices (``lpd__k5``), the colour rule (gatings oracle and none, no CRF) and
old ones (``cam``, ``lpd__norefiner``: no CRF, no ``bg_from_gt``, tissue-only ``FwIoU``, no
``metrics_by_checkpoint``); see make_fixture.py.
"""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpd_bench.cli import main as cli_main
from lpd_bench.evaluation import wsss_metric
from lpd_bench.methods import get_method
from lpd_bench.report import stats, tables
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
    for table in ('main_results', 'protocols', 'checkpoints', 'ablations', 'cost', 'published',
                  'comparisons'):
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
                 'background included', '14 of 18 stored results have CRF variants',
                 'for the 12 of 18 results that recorded one', 'k = 1 point has no mask refiner',
                 'CRF does not apply', '*none* ("none (no labels at test)"', '## Statistics',
                 '13 of 18 stored results hold per-image', '3 test images', 'It is a FLOOR',
                 '2000 resamples', 'paired by seed', 'Holm correction within each family',
                 'main: 12 tested, 0 significant, 10 without per-image data',
                 'ablations: 20 tested,', 'gating: 4 tested,'):
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
    # pbip, lpd: 2 gatings x 2 CRF x 3 protocols; cam (old results): 2 gatings x 2 protocols;
    # colour rule: 2 gatings (oracle, none) x no CRF x 3 protocols.
    assert len(table) == 2 * 12 + 4 + 6
    # oracle + CRF + BG counted (the paper protocol) first; cam has no CRF rows
    assert list(table['method'][:2]) == ['pbip', 'lpd']
    assert list(table['CRF'][:2]) == ['CRF', 'CRF'] and table['protocol'][0] == 'bg_counted'
    no_crf = table[(table['gating'] == 'oracle') & (table['crf'] == False)]  # noqa: E712
    assert list(no_crf['method'][:4]) == ['colour_rule', 'cam', 'pbip', 'lpd']
    assert list(dict.fromkeys(no_crf['protocol'])) == ['bg_counted', 'bg_ignored', 'bg_from_gt']
    # gating none after oracle and predicted, labelled
    assert list(dict.fromkeys(table['gating'])) == ['oracle', 'predicted', 'none']
    assert set(table.loc[table['gating'] == 'none', 'Gating']) == {'none (no labels at test)'}
    assert set(table.loc[table['gating'] == 'none', 'method']) == {'colour_rule'}


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
    assert list(csv.index) == ['colour_rule', 'cam', 'pbip', 'lpd', 'label_only']
    # mean, std, lo, hi of 18 combinations (3 gatings), 2 x 4 oracle − predicted columns, seeds
    assert csv.shape[1] == 18 * 4 + 2 * 4 + 1
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
    assert header.index('predicted, no CRF, BG from GT') < header.index('none, CRF, BG counted')
    cam = next(line for line in shown.splitlines() if line.startswith('| CAM'))
    cells = [c.strip() for c in cam.strip('|').split('|')]
    assert cells[1:4] == ['-', '-', '-'] and cells[6] == '-' and cells[4] != '-'
    assert ' ± ' in cells[4] and cells[-2] == '± std over seeds (no per-image data)'
    label = next(line for line in shown.splitlines() if line.startswith('| Label-only'))
    cells = [c.strip() for c in label.strip('|').split('|')]
    assert cells[1:4] == ['n/a'] * 3 and cells[7:19] == ['n/a'] * 12 and cells[4] != '-'
    assert cells[19:21] == ['n/a', 'n/a']  # oracle − predicted
    # the colour rule: oracle and none without CRF; no predicted gating, no CRF: '-'
    colour = next(line for line in shown.splitlines() if line.startswith('| Colour'))
    cells = [c.strip() for c in colour.strip('|').split('|')]
    assert cells[1:4] == ['-'] * 3 and cells[7:13] == ['-'] * 6 and cells[16:19] != ['-'] * 3
    assert cells[13:16] == ['-'] * 3 and cells[19:21] == ['-', '-']
    assert cells[-2] == '95% CI: 3 test images'
    lpd = next(line for line in shown.splitlines() if line.startswith('| LPD'))
    cells = [c.strip() for c in lpd.strip('|').split('|')]
    assert re.fullmatch(r'\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]', cells[1]), cells[1]
    assert cells[13:19] == ['-'] * 6  # no gating none
    assert re.fullmatch(r'-?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\]( \*)?', cells[19])
    assert cells[-2] == '95% CI: 3 test images x 2 seeds'
    gain = [block(work_dir, f'lpd__seed{s}', v, 'bg_counted')['mIoU'] for s in (0, 1)
            for v in ('oracle_crf', 'predicted_crf')]
    assert csv.loc['lpd', 'oracle_minus_predicted_crf_difference'] == pytest.approx(
        (gain[0] - gain[1] + gain[2] - gain[3]) / 2, abs=1e-3)
    cam_gain = [block(work_dir, f'cam__seed{s}', v, 'bg_counted')['mIoU'] for s in (0, 1)
                for v in ('oracle', 'predicted')]
    assert csv.loc['cam', 'oracle_minus_predicted_difference'] == pytest.approx(
        (cam_gain[0] - cam_gain[1] + cam_gain[2] - cam_gain[3]) / 2, abs=1e-3)
    assert np.isnan(csv.loc['cam', 'oracle_minus_predicted_lo'])  # no per-image data


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


# --- statistics (lpd_bench/report/stats.py) -------------------------------------------------

def _images(rng, n, quality=0.8):
    """n per-image 5x5 matrices: each gt pixel predicted right with probability ``quality``."""
    gt = rng.multinomial(400, [0.25, 0.25, 0.15, 0.15, 0.2], size=n)
    out = np.zeros((n, 5, 5), dtype=np.int64)
    for i in range(n):
        for c in range(5):
            p = np.full(5, (1 - quality) / 4)
            p[c] = quality
            out[i, c] = rng.multinomial(gt[i, c], p)
    return out


def _boot(runs, n, resamples=2000):
    """A Bootstrap over {key: (N, 5, 5) matrices} (variant 'oracle')."""
    data = stats.PerImageData()
    names = [f'i{i}.png' for i in range(n)]
    for key, matrices in runs.items():
        assert data.add(key, {'names': names, 'confusion': {'oracle': matrices.tolist()}})
    return stats.Bootstrap(data, resamples)


def test_bootstrap_miou_is_the_metrics_confusion_summed_miou():
    rng = np.random.default_rng(0)
    matrices = _images(rng, 20)
    matrices[:, 3] = 0  # NEC absent from ground truth ...
    matrices[:, :, 3] = 0  # ... and prediction: left out of the mean, as the metric does
    boot = _boot({'a': matrices}, 20)
    for protocol in wsss_metric.PROTOCOLS:
        want = wsss_metric.protocol_scores(matrices.sum(0), protocol)['mIoU']
        assert boot.observed('a', 'oracle', protocol) == pytest.approx(want)
        assert stats.miou(wsss_metric.protocol_matrix(matrices.sum(0), protocol)) == \
            pytest.approx(want)
    # bg_from_gt shares bg_ignored's tissue mIoU, replicate by replicate
    assert (boot.replicates('a', 'oracle', 'bg_from_gt')
            == boot.replicates('a', 'oracle', 'bg_ignored')).all()
    # a resample of all-ones weights would give the observed score; the replicates scatter
    # around it
    replicates = boot.replicates('a', 'oracle', 'bg_counted')
    assert replicates.shape == (2000, )
    assert abs(np.median(replicates) - boot.observed('a', 'oracle', 'bg_counted')) < 0.5


def test_identical_methods_difference_contains_zero_and_p_is_one():
    rng = np.random.default_rng(1)
    same = _images(rng, 50)
    boot = _boot({'a': same, 'b': same.copy()}, 50)
    found = stats.compare(boot, [(0, 'a')], 'oracle', [(0, 'b')], 'oracle', 'bg_counted')
    assert found.difference == 0 and found.lo <= 0 <= found.hi
    assert found.p == 1 and found.p_empirical == 1
    assert found.seeds == '1 paired' and found.images == 50


def test_planted_constant_difference_on_every_image_is_significant():
    rng = np.random.default_rng(2)
    good = _images(rng, 60)
    worse = good.copy()
    moved = worse[:, 0, 0] // 40  # 2.5% of every image's TUM pixels predicted STR instead
    worse[:, 0, 0] -= moved
    worse[:, 0, 1] += moved
    boot = _boot({'good': good, 'worse': worse}, 60)
    found = stats.compare(boot, [(0, 'good')], 'oracle', [(0, 'worse')], 'oracle', 'bg_counted')
    assert found.difference > 0 and found.lo > 0
    assert found.p < 1e-6 and found.p_empirical == pytest.approx(2 / 2001)
    reverse = stats.compare(boot, [(0, 'worse')], 'oracle', [(0, 'good')], 'oracle',
                            'bg_counted')
    assert reverse.difference == pytest.approx(-found.difference) and reverse.hi < 0
    # an unpaired look at the same two methods (their own intervals) overlaps: pairing is what
    # makes the small difference visible
    a = stats.interval(boot, [(0, 'good')], 'oracle', 'bg_counted')
    b = stats.interval(boot, [(0, 'worse')], 'oracle', 'bg_counted')
    assert a.lo < b.hi and found.hi - found.lo < (a.hi - a.lo) / 2


def test_interval_matches_scipy_bootstrap_for_one_seed():
    from scipy.stats import bootstrap
    rng = np.random.default_rng(3)
    matrices = _images(rng, 150, quality=0.7)
    boot = _boot({'a': matrices}, 150)
    ours = stats.interval(boot, [(0, 'a')], 'oracle', 'bg_counted')

    def statistic(index, axis=-1):
        return stats.miou(matrices[index].sum(axis=-3))

    theirs = bootstrap((np.arange(150), ), statistic, vectorized=True, batch=200,
                       n_resamples=4000, method='percentile', rng=np.random.default_rng(0))
    width = ours.hi - ours.lo
    assert ours.lo == pytest.approx(theirs.confidence_interval.low, abs=0.1 * width)
    assert ours.hi == pytest.approx(theirs.confidence_interval.high, abs=0.1 * width)
    assert ours.mean == pytest.approx(float(stats.miou(matrices.sum(0))))


def test_seed_level_widens_the_interval_over_the_seeds_spread():
    rng = np.random.default_rng(4)
    low, high = _images(rng, 80, quality=0.6), _images(rng, 80, quality=0.9)
    boot = _boot({'s0': low, 's1': high}, 80)
    both = stats.interval(boot, [(0, 's0'), (1, 's1')], 'oracle', 'bg_counted')
    one = stats.interval(boot, [(0, 's0')], 'oracle', 'bg_counted')
    means = [boot.observed(k, 'oracle', 'bg_counted') for k in ('s0', 's1')]
    assert both.mean == pytest.approx(np.mean(means)) and both.seeds == 2
    assert both.lo < min(means) + 1 and both.hi > max(means) - 1  # seeds drawn with replacement
    assert both.hi - both.lo > 3 * (one.hi - one.lo)
    # pairing by the seeds both sides have; none in common: each side draws its own
    paired = stats.compare(boot, [(0, 's0'), (1, 's1')], 'oracle', [(1, 's0'), (2, 's1')],
                           'oracle', 'bg_counted')
    assert paired.seeds == '1 paired'
    assert paired.difference == pytest.approx(means[1] - means[0])
    unpaired = stats.compare(boot, [(0, 's0')], 'oracle', [(5, 's1')], 'oracle', 'bg_counted')
    assert unpaired.seeds == '1 vs 1 unpaired'


def test_holm_matches_the_step_down_rule():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.2])
    adjusted = stats.holm(p)
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 (m = 5) times 5, 4, 3, 2, 1 = 0.025, 0.04,
    # 0.09, 0.08, 0.2, made monotone: 0.025, 0.04, 0.09, 0.09, 0.2
    want = [0.04, 0.09, 0.09, 0.025, np.nan, 0.2]
    np.testing.assert_allclose(adjusted, want)
    # the step-down rule directly: reject the j-th smallest while p_(j) <= alpha / (m - j + 1)
    for alpha in (0.03, 0.05, 0.1):
        tested = np.sort(p[~np.isnan(p)])
        rejected = 0
        for j, value in enumerate(tested):
            if value > alpha / (len(tested) - j):
                break
            rejected += 1
        assert rejected == np.sum(adjusted <= alpha)
    assert np.isnan(stats.holm([np.nan])).all() and len(stats.holm([])) == 0
    frame = stats.add_holm(pd.DataFrame({'family': ['x', 'x', 'y'], 'p': [0.02, 0.03, np.nan]}))
    assert list(frame['p_holm'][:2]) == pytest.approx([0.04, 0.04])
    assert list(frame['significant']) == [True, True, None]


# --- statistics in the report -----------------------------------------------------------------

def test_comparisons_list_every_pair_point_and_gating(work_dir, tmp_path):
    written = build_report(work_dir, tmp_path / 'r')
    assert {tmp_path / 'r' / f'comparisons.{ext}' for ext in ('md', 'csv')} <= set(written)
    csv = pd.read_csv(tmp_path / 'r' / 'comparisons.csv')
    main = csv[csv['family'] == 'main']
    pairs = list(dict.fromkeys(zip(main['a'], main['b'])))
    assert pairs == [('colour_rule', 'cam'), ('colour_rule', 'pbip'), ('colour_rule', 'lpd'),
                     ('cam', 'pbip'), ('cam', 'lpd'), ('pbip', 'lpd')]
    assert set(main['protocol']) == {'bg_counted', 'bg_ignored'}  # bg_from_gt: = bg_ignored
    pbip_lpd = main[(main['a'] == 'pbip') & (main['b'] == 'lpd')]
    assert list(dict.fromkeys(pbip_lpd['variant_a'])) == ['oracle_crf', 'oracle',
                                                          'predicted_crf', 'predicted']
    assert pbip_lpd['p'].notna().all() and (pbip_lpd['seeds'] == '2 paired').all()
    assert (pbip_lpd['images'] == 3).all()
    colour = main[main['a'] == 'colour_rule']
    assert set(colour['variant_a']) == {'oracle'}  # the only gating it shares
    assert colour[colour['b'] == 'cam']['p'].isna().all()  # cam: old results
    assert (colour[colour['b'] == 'cam']['note'] == 'no per-image data').all()
    # the difference is A − B of the seed means of the stored (= per-image summed) mIoU
    row = pbip_lpd[(pbip_lpd['variant_a'] == 'oracle') & (pbip_lpd['protocol'] == 'bg_counted')]
    want = np.mean([block(work_dir, f'pbip__seed{s}', 'oracle', 'bg_counted')['mIoU']
                    - block(work_dir, f'lpd__seed{s}', 'oracle', 'bg_counted')['mIoU']
                    for s in (0, 1)])
    assert row['difference'].iloc[0] == pytest.approx(want, abs=1e-3)
    assert row['lo'].iloc[0] <= row['difference'].iloc[0] <= row['hi'].iloc[0]
    tested = csv[csv['p'].notna()]
    assert ((tested['p_holm'] >= tested['p'] - 1e-12) & (tested['p_holm'] <= 1)).all()
    ablations = csv[csv['family'] == 'ablations']
    assert list(dict.fromkeys(zip(ablations['group'], ablations['a'], ablations['b']))) == [
        ('num_per_class', '1', '10'), ('num_per_class', '3', '10'), ('num_per_class', '5', '10'),
        ('diversity_weight', '0', '0.5'), ('diversity_weight', '0.1', '0.5'),
        ('mask_refiner', 'without', 'with'),
        ('prototype_source', 'clustered (PBIP, k=3)', 'learnable (LPD, k=3)')]
    assert ablations[ablations['a'] == '5']['p'].isna().all()  # lpd__k5: no per-image data
    assert set(ablations['protocol']) == {'bg_counted'}
    gating = csv[csv['family'] == 'gating']
    assert list(zip(gating['a'], gating['variant_a'], gating['variant_b'])) == [
        ('cam', 'oracle', 'predicted'), ('pbip', 'oracle_crf', 'predicted_crf'),
        ('pbip', 'oracle', 'predicted'), ('lpd', 'oracle_crf', 'predicted_crf'),
        ('lpd', 'oracle', 'predicted')]
    md = (tmp_path / 'r' / 'comparisons.md').read_text()
    assert md.count('\n| ') == len(csv) + 1  # header + one line per comparison
    assert '| no per-image data' in md and 'oracle, CRF − predicted, CRF' in md


def _plant(work_dir, run_id, transform):
    """Rewrite a stored run's last-checkpoint per-image matrices with ``transform`` and its
    whole-split blocks from their sums (as the metric would have written them)."""
    path = work_dir / 'runs' / run_id / 'result.json'
    result = json.loads(path.read_text())
    metrics = result['metrics']
    for variant, matrices in metrics['per_image']['confusion'].items():
        planted = transform(np.array(matrices), variant)
        metrics['per_image']['confusion'][variant] = planted.tolist()
        metrics['results'][variant] = json.loads(json.dumps(wsss_metric._nan_to_none(
            {p: wsss_metric.protocol_scores(planted.sum(0), p) for p in wsss_metric.PROTOCOLS})))
    result['metrics_by_checkpoint']['last'] = metrics
    path.write_text(json.dumps(result))


def _perfect(matrices, variant):
    """Every pixel right, unless the variant is a predicted one (left as it was)."""
    if variant.startswith('predicted'):
        return matrices
    return np.einsum('nij,jk->nik', matrices.sum(axis=2, keepdims=True),
                     np.ones((1, 5))) * np.eye(5, dtype=np.int64)


def test_planted_difference_is_marked_significant_in_the_tables(work_dir, tmp_path):
    for seed in (0, 1):
        _plant(work_dir, f'lpd__seed{seed}', _perfect)
    build_report(work_dir, tmp_path / 'r')
    csv = pd.read_csv(tmp_path / 'r' / 'comparisons.csv')
    row = csv[(csv['family'] == 'main') & (csv['a'] == 'pbip') & (csv['b'] == 'lpd')
              & (csv['variant_a'] == 'oracle') & (csv['protocol'] == 'bg_counted')].iloc[0]
    assert row['difference'] < -20 and row['hi'] < 0 and row['p_holm'] < 0.05
    assert row['significant'] == True  # noqa: E712
    main = pd.read_csv(tmp_path / 'r' / 'main_results.csv')
    lpd = main[(main['method'] == 'lpd') & (main['gating'] == 'oracle') & (main['crf'] == False)  # noqa
               & (main['protocol'] == 'bg_counted')].iloc[0]
    assert lpd['mIoU_mean'] == pytest.approx(100) and lpd['mIoU_lo'] == pytest.approx(100)
    assert lpd['compared'].startswith('> ') and 'k-means bank + LPD head' in lpd['compared']
    pbip = main[(main['method'] == 'pbip') & (main['gating'] == 'oracle')
                & (main['crf'] == False) & (main['protocol'] == 'bg_from_gt')].iloc[0]  # noqa
    assert '< ' in pbip['compared'] and 'LPD' in pbip['compared']  # bg_from_gt: bg_ignored's
    cam = main[(main['method'] == 'cam')].iloc[0]
    assert cam['compared'] == 'no per-image data' and np.isnan(cam['mIoU_lo'])
    assert (main.loc[main['method'] == 'label_only', 'compared'] == 'not compared').all()
    colour = main[main['method'] == 'colour_rule'].set_index(['gating', 'protocol'])['compared']
    assert colour[('none', 'bg_counted')] == '-'  # no other method has gating none
    assert colour[('oracle', 'bg_counted')] == '< LPD'  # paired on seed 0, the one it has
    assert not main.loc[main['method'] == 'label_only', 'mIoU_lo'].isna().any()
    shown = (tmp_path / 'r' / 'main_results.md').read_text()
    assert '| significant mIoU differences (Holm 0.05)' in shown and '| mIoU 95% CI' in shown
    # the ablation table: k = 1, 3 against the (now perfect) default k = 10
    ablations = (tmp_path / 'r' / 'ablations.md').read_text()
    k3 = next(line for line in ablations.splitlines() if line.startswith('| prototypes per class k  | 3 '))
    cells = [c.strip() for c in k3.strip('|').split('|')]
    assert re.fullmatch(r'-\d+\.\d\d \[-\d+\.\d\d, -\d+\.\d\d\] \*', cells[6]), cells[6]
    k10 = next(line for line in ablations.splitlines() if line.startswith('| prototypes per class k  | 10 '))
    assert '| default ' in k10 and '3 test images x 2 seeds' in k10
    k5 = next(line for line in ablations.splitlines() if line.startswith('| prototypes per class k  | 5 '))
    assert ' ± ' in k5 and 'no per-image data' in k5
    numeric = pd.read_csv(tmp_path / 'r' / 'ablations.csv')
    k3 = numeric[(numeric['group'] == 'num_per_class') & (numeric['value'] == '3')].iloc[0]
    assert k3['oracle_significant'] == True and k3['oracle_diff_hi'] < 0  # noqa: E712
    # the gating's worth: LPD's oracle is perfect, its predicted gating is not
    protocols = pd.read_csv(tmp_path / 'r' / 'protocols.csv').set_index('method')
    assert protocols.loc['lpd', 'oracle_minus_predicted_lo'] > 0
    assert '*' in next(line for line in (tmp_path / 'r' / 'protocols.md').read_text().splitlines()
                       if line.startswith('| LPD')).split('|')[-4]


def test_ablation_plot_draws_intervals_or_std(work_dir, tmp_path, monkeypatch):
    from lpd_bench.report import figures, uncertainty
    titles = []
    monkeypatch.setattr(figures.plt.Axes, 'set_title',
                        lambda self, text, **kw: titles.append(text))
    frame = scores_frame(iter_results(work_dir))
    unc = uncertainty.analyse(iter_results(work_dir), frame)
    assert figures.ablation_plot(frame, 'diversity_weight', 'lambda', tmp_path / 'a.png', unc)
    assert 'bootstrap interval' in titles[-1]
    # k = 5 has no per-image data: the whole plot falls back to the std over seeds
    assert figures.ablation_plot(frame, 'num_per_class', 'k', tmp_path / 'b.png', unc)
    assert 'no per-image data' in titles[-1]
    point = unc.interval('ablation', ('diversity_weight', '0.1'), 'oracle', 'bg_counted')
    assert point['lo'] <= point['mIoU'] <= point['hi'] and point['seeds'] == 2


def test_group_defaults_are_the_owners_default_settings():
    from lpd_bench.report.uncertainty import group_defaults
    defaults = group_defaults()
    assert defaults['num_per_class'] == '10' and defaults['diversity_weight'] == '0.5'
    assert defaults['mask_refiner'] == 'with' and defaults['diversity_form'] == 'corrected'
    assert defaults['prototype_source'] == 'learnable (LPD, k=3)'  # no point is LPD's default


def test_report_without_any_per_image_data_falls_back_to_the_std(work_dir, tmp_path):
    for path in work_dir.glob('runs/*/result.json'):
        result = json.loads(path.read_text())
        for metrics in (result['metrics'], *(result.get('metrics_by_checkpoint') or {}).values()):
            if metrics:
                metrics.pop('per_image', None)
        path.write_text(json.dumps(result))
    shutil.rmtree(work_dir / 'runs' / 'colour_rule__seed0')
    build_report(work_dir, tmp_path / 'r')
    protocols = (tmp_path / 'r' / 'protocols.md').read_text()
    lpd = next(line for line in protocols.splitlines() if line.startswith('| LPD'))
    assert ' ± ' in lpd and '[' not in lpd.split('|')[1 + 1]
    csv = pd.read_csv(tmp_path / 'r' / 'comparisons.csv')
    assert csv['p'].isna().all() and (csv['note'] == 'no per-image data').all()
    readme = (tmp_path / 'r' / 'README.md').read_text()
    assert '0 of 17 stored results hold per-image' in readme
