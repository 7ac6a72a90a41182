"""The stage-2 block of `lpd-bench report` (issue 13, item 3): networks trained on a method's
train pseudo-masks, tested with no labels (results with ``stage: 2``, ``source_run``,
``pseudo_masks`` and the stage-1 run's cost).

On the stored-results fixture (tests/fixtures/results: LPD and the PBIP-style baseline with two
seeds and per-image matrices of 3 test images, the colour rule with a stage-1 'none' gating) a
stage-2 result is written for LPD and PBIP, seeds 0 and 1, whose 'none' variant is built from
per-image matrices as the metric would have written it: LPD's stage-2 network is perfect, PBIP's
is the PBIP run's predicted-gating prediction.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpd_bench.evaluation import wsss_metric
from lpd_bench.report import uncertainty
from lpd_bench.report.build import build_report, main_run_dirs, stage2_cost_frame
from lpd_bench.report.tables import (GATING_LABELS, STAGE2, main_table, pseudo_mask_frame,
                                     pseudo_mask_stats, scores_frame)
from lpd_bench.runner.results import iter_results

FIXTURE = Path(__file__).parent / 'fixtures' / 'results'
METHODS = ('pbip', 'lpd')
SEEDS = (0, 1)
#: val mIoU of the pseudo-masks of each (method, seed)
VAL_MIOU = {('lpd', 0): 61.0, ('lpd', 1): 64.0, ('pbip', 0): 50.0, ('pbip', 1): 55.0}
#: stage-2 stage wall times of each (method, seed): pseudo-masks, train, test
STAGE_WALL = {('lpd', 0): (4.0, 30.0, 2.0), ('lpd', 1): (6.0, 34.0, 2.0),
              ('pbip', 0): (5.0, 31.0, 3.0), ('pbip', 1): (5.0, 33.0, 3.0)}


def _copy_fixture(target):
    shutil.copytree(FIXTURE / 'work_dir', target)
    for path in target.glob('runs/*/result.json'):
        path.write_text(path.read_text().replace('@DATA@', str(FIXTURE / 'data')))
    return target


def stored(work_dir, run_id):
    return json.loads((work_dir / 'runs' / run_id / 'result.json').read_text())


def _perfect(matrices):
    """Every ground-truth pixel predicted right."""
    return np.einsum('nij,jk->nik', matrices.sum(axis=2, keepdims=True),
                     np.ones((1, 5))) * np.eye(5, dtype=np.int64)


def stage2_matrices(work_dir, method, seed):
    source = stored(work_dir, f'{method}__seed{seed}')['metrics']['per_image']['confusion']
    if method == 'lpd':
        return _perfect(np.array(source['oracle']))
    return np.array(source['predicted'])


def write_stage2(work_dir, method, seed, matrices, legacy_cost=False):
    """A stage-2 result of ``method``/``seed`` in the runner's schema (module docstring)."""
    first = stored(work_dir, f'{method}__seed{seed}')
    names = first['metrics']['per_image']['names']
    metrics = {'protocol': {'stage': 2, 'gating': 'none', 'crf': False, 'tta': None},
               'classes': first['metrics']['classes'], 'num_images': len(names),
               'results': {'none': json.loads(json.dumps(wsss_metric._nan_to_none(
                   {p: wsss_metric.protocol_scores(matrices.sum(0), p)
                    for p in wsss_metric.PROTOCOLS})))},
               'per_image': {'names': names, 'confusion': {'none': matrices.tolist()}}}
    walls = STAGE_WALL[(method, seed)]
    total = sum(walls)
    cost = {'stages': [{'name': name, 'wall_s': wall} for name, wall in
                       zip(('pseudo_masks', 'train', 'test'), walls)],
            'total_wall_s': total, 'peak_rss_mb': 800.0}
    if not legacy_cost:  # else the report must find the stage-1 total from the source run
        cost['stage1_wall_s'] = first['cost']['total_wall_s']
        cost['both_stages_wall_s'] = first['cost']['total_wall_s'] + total
    run_id = f'{method}__stage2__seed{seed}'
    result = {**first, 'run_id': run_id, 'stage': 2, 'source_run': first['run_id'],
              'memberships': [m for m in first['memberships'] if m['name'] == 'main'],
              'ablation': None, 'config': 'configs/stage2_synth_cpu.py', 'metrics': metrics,
              'metrics_by_checkpoint': {'last': metrics, 'best': None},
              'checkpoints': {'last': None, 'best': None}, 'cost': cost,
              'pseudo_masks': {'train': {'dir': 'x', 'images': 12, 'class_frequencies': {},
                                         'ignored_pixels': 0},
                               'val': {'dir': 'y', 'images': 3,
                                       'mIoU': VAL_MIOU[(method, seed)]}}}
    (work_dir / 'runs' / run_id).mkdir()
    (work_dir / 'runs' / run_id / 'result.json').write_text(json.dumps(result))
    return result


@pytest.fixture
def work_dirs(tmp_path):
    """(stage 1 only, stage 1 + stage 2 of LPD and PBIP, seeds 0 and 1)."""
    first = _copy_fixture(tmp_path / 'first')
    both = _copy_fixture(tmp_path / 'both')
    for method in METHODS:
        for seed in SEEDS:
            write_stage2(both, method, seed, stage2_matrices(both, method, seed))
    return first, both


def stage2_miou(work_dir, method, protocol):
    return [stored(work_dir, f'{method}__stage2__seed{s}')['metrics']['results']['none'][
        protocol]['mIoU'] for s in SEEDS]


def test_stage2_rows_are_their_own_block_with_the_seed_means(work_dirs):
    first, both = work_dirs
    table = main_table(scores_frame(iter_results(both)))
    assert list(dict.fromkeys(table['gating'])) == ['oracle', 'predicted', 'none', STAGE2]
    block = table[table['gating'] == STAGE2]
    assert set(block['Gating']) == {GATING_LABELS[STAGE2]}
    assert set(block['method']) == set(METHODS) and set(block['CRF']) == {'no CRF'}
    assert len(block) == 2 * 3 and (block['seeds'] == 2).all()
    for method in METHODS:
        for protocol in ('bg_counted', 'bg_ignored', 'bg_from_gt'):
            row = block[(block['method'] == method) & (block['protocol'] == protocol)].iloc[0]
            values = stage2_miou(both, method, protocol)
            assert row['mIoU_mean'] == pytest.approx(np.mean(values))
            assert row['mIoU_std'] == pytest.approx(np.std(values, ddof=1))
    lpd = block[(block['method'] == 'lpd') & (block['protocol'] == 'bg_counted')].iloc[0]
    assert lpd['mIoU_mean'] == pytest.approx(100)  # the perfect stage-2 network, not stage 1's
    # the colour rule's stage-1 'none' gating stays a block of its own
    assert set(table.loc[table['gating'] == 'none', 'method']) == {'colour_rule'}
    # the stage-1 rows are exactly those of the work dir without stage 2
    alone = main_table(scores_frame(iter_results(first)))
    pd.testing.assert_frame_equal(table[table['gating'] != STAGE2].reset_index(drop=True),
                                  alone)


def test_pseudo_mask_column_is_the_mean_of_the_val_miou(work_dirs, tmp_path):
    _, both = work_dirs
    masks = pseudo_mask_stats(pseudo_mask_frame(iter_results(both))).set_index('method')
    for method in METHODS:
        values = [VAL_MIOU[(method, s)] for s in SEEDS]
        assert masks.loc[method, 'pseudo_mask_mIoU_mean'] == pytest.approx(np.mean(values))
        assert masks.loc[method, 'pseudo_mask_mIoU_std'] == pytest.approx(
            np.std(values, ddof=1))
    build_report(both, tmp_path / 'r')
    main = pd.read_csv(tmp_path / 'r' / 'main_results.csv')
    second = main['gating'] == STAGE2
    assert main.loc[~second, 'pseudo_mask_mIoU_mean'].isna().all()
    for method in METHODS:
        rows = main[second & (main['method'] == method)]
        assert rows['pseudo_mask_mIoU_mean'].to_numpy() == pytest.approx(
            [np.mean([VAL_MIOU[(method, s)] for s in SEEDS])] * 3)
        # intervals over the stage-2 runs: the seed mean lies inside
        assert (rows['mIoU_lo'] <= rows['mIoU_mean'] + 1e-9).all()
        assert (rows['mIoU_mean'] <= rows['mIoU_hi'] + 1e-9).all()
    md = (tmp_path / 'r' / 'main_results.md').read_text()
    assert 'pseudo-mask val mIoU' in md and 'cannot be scored on train' in md
    assert '62.50 ± 2.12' in md  # LPD: mean ± std of 61 and 64
    protocols = pd.read_csv(tmp_path / 'r' / 'protocols.csv').set_index('method')
    assert protocols.loc['lpd', 'pseudo_mask_mIoU_mean'] == pytest.approx(62.5)
    assert protocols.loc['pbip', 'pseudo_mask_mIoU_mean'] == pytest.approx(52.5)
    assert pd.isna(protocols.loc['cam', 'pseudo_mask_mIoU_mean'])
    assert protocols.loc['lpd', 'stage2_bg_counted_mIoU_mean'] == pytest.approx(100)
    assert 'stage2_crf_bg_counted_mIoU_mean' not in protocols  # stage 2 has no CRF columns
    shown = (tmp_path / 'r' / 'protocols.md').read_text()
    assert 'stage 2, no CRF, BG counted' in shown and 'stage-2 seeds' in shown


def test_stage1_tables_are_unchanged_by_stage2_results(work_dirs, tmp_path):
    first, both = work_dirs
    build_report(first, tmp_path / 'a')
    build_report(both, tmp_path / 'b')

    def read(name, folder):
        return pd.read_csv(tmp_path / folder / f'{name}.csv')

    main_a, main_b = read('main_results', 'a'), read('main_results', 'b')
    main_b = main_b[main_b['gating'] != STAGE2].drop(
        columns=[c for c in main_b if c.startswith('pseudo_mask')]).reset_index(drop=True)
    pd.testing.assert_frame_equal(main_a, main_b)
    for name in ('cost', 'checkpoints', 'ablations', 'power'):
        pd.testing.assert_frame_equal(read(name, 'a'), read(name, 'b'))
    comparisons = read('comparisons', 'b')
    pd.testing.assert_frame_equal(
        read('comparisons', 'a'),
        comparisons[comparisons['family'] != 'stage2'].reset_index(drop=True))
    protocols_a, protocols_b = read('protocols', 'a'), read('protocols', 'b')
    pd.testing.assert_frame_equal(protocols_a, protocols_b[list(protocols_a.columns)])
    readme = (tmp_path / 'b' / 'README.md').read_text()
    assert '## Stage 2 (no labels at test)' in readme and '4 stage-2 results' in readme
    assert 'stage2: 2 tested' in readme
    assert '## Stage 2' not in (tmp_path / 'a' / 'README.md').read_text()
    # the figures show the methods' own maps: stage-2 runs are never picked
    assert all('stage2' not in str(d) for d in main_run_dirs(iter_results(both), both).values())


def test_stage2_comparisons_pair_stage2_runs_only(work_dirs):
    _, both = work_dirs
    results = iter_results(both)
    frame = scores_frame(results)
    unc = uncertainty.analyse(results, frame)
    assert unc.runs('main', 'lpd', STAGE2) == [(0, 'lpd__stage2__seed0'),
                                                (1, 'lpd__stage2__seed1')]
    assert unc.runs('main', 'lpd', 'oracle') == [(0, 'lpd__seed0'), (1, 'lpd__seed1')]
    rows = unc.comparisons
    second = rows[rows['family'] == 'stage2']
    assert list(zip(second['a'], second['b'], second['variant_a'], second['protocol'])) == [
        ('pbip', 'lpd', STAGE2, 'bg_counted'), ('pbip', 'lpd', STAGE2, 'bg_ignored')]
    assert (second['variant_b'] == STAGE2).all() and (second['seeds'] == '2 paired').all()
    assert not rows.loc[rows['family'] != 'stage2', 'variant_a'].str.startswith(STAGE2).any()
    # the difference is that of the stage-2 seed means (LPD's stage-2 network is perfect)
    row = second[second['protocol'] == 'bg_counted'].iloc[0]
    want = np.mean(stage2_miou(both, 'pbip', 'bg_counted')) - 100
    assert row['difference'] == pytest.approx(want, abs=1e-6)
    assert row['significant'] == True  # noqa: E712  (its own Holm family of 2)
    interval = unc.interval('main', 'lpd', STAGE2, 'bg_counted')
    assert interval['seeds'] == 2 and interval['lo'] == pytest.approx(100)
    # the main table's significance column of a stage-2 row names stage-2 rows only
    table = uncertainty.annotate_main(main_table(frame), unc)
    lpd = table[(table['gating'] == STAGE2) & (table['method'] == 'lpd')
                & (table['protocol'] == 'bg_counted')].iloc[0]
    assert lpd['compared'].startswith('> ') and 'CAM' not in lpd['compared']
    assert lpd['interval_basis'] == '95% CI: 3 test images x 2 seeds'


def test_stage2_costs_and_both_stage_totals(work_dirs, tmp_path):
    _, both = work_dirs
    # seed 1 of PBIP written by a runner that did not store the stage-1 total: found from
    # its source run
    shutil.rmtree(both / 'runs' / 'pbip__stage2__seed1')
    write_stage2(both, 'pbip', 1, stage2_matrices(both, 'pbip', 1), legacy_cost=True)
    build_report(both, tmp_path / 'r')
    cost = pd.read_csv(tmp_path / 'r' / 'cost_stage2.csv').set_index('method')
    assert list(cost.index) == ['pbip', 'lpd']
    for method in METHODS:
        walls = np.array([STAGE_WALL[(method, s)] for s in SEEDS])
        firsts = [stored(both, f'{method}__seed{s}')['cost']['total_wall_s'] for s in SEEDS]
        for i, name in enumerate(('pseudo_masks', 'train', 'test')):
            assert cost.loc[method, f'{name}_wall_s_mean'] == pytest.approx(walls[:, i].mean())
        assert cost.loc[method, 'total_wall_s_mean'] == pytest.approx(walls.sum(1).mean())
        assert cost.loc[method, 'stage1_wall_s_mean'] == pytest.approx(np.mean(firsts),
                                                                       abs=1e-3)
        assert cost.loc[method, 'both_stages_wall_s_mean'] == pytest.approx(
            np.mean(firsts) + walls.sum(1).mean(), abs=1e-3)
        assert cost.loc[method, 'seeds'] == 2
    # the stage-1 rows are the stage-1 runs' only
    stage1 = pd.read_csv(tmp_path / 'r' / 'cost.csv').set_index('method')
    totals = [stored(both, f'lpd__seed{s}')['cost']['total_wall_s'] for s in SEEDS]
    assert stage1.loc['lpd', 'total_wall_s_mean'] == pytest.approx(np.mean(totals), abs=1e-3)
    assert stage1.loc['lpd', 'seeds'] == 2
    assert 'cost_stage2.md' in (tmp_path / 'r' / 'cost.md').read_text()
    assert 'both stages (s)' in (tmp_path / 'r' / 'cost_stage2.md').read_text()


def test_missing_pseudo_mask_score_and_cost_keys_are_tolerated(work_dirs, tmp_path):
    _, both = work_dirs
    for seed in SEEDS:
        path = both / 'runs' / f'pbip__stage2__seed{seed}' / 'result.json'
        result = json.loads(path.read_text())
        result['pseudo_masks'] = {'train': {'images': 12}}  # no val scores
        result['cost'].pop('both_stages_wall_s')
        path.write_text(json.dumps(result))
    build_report(both, tmp_path / 'r')
    protocols = pd.read_csv(tmp_path / 'r' / 'protocols.csv').set_index('method')
    assert pd.isna(protocols.loc['pbip', 'pseudo_mask_mIoU_mean'])
    assert protocols.loc['lpd', 'pseudo_mask_mIoU_mean'] == pytest.approx(62.5)
    costs = stage2_cost_frame(iter_results(both)).set_index('run_id')
    row = costs.loc['pbip__stage2__seed0']
    assert row['both_stages_wall_s'] == pytest.approx(row['stage1_wall_s']
                                                      + row['total_wall_s'])
