"""The performance targets (tests/perf/perf_targets.py) on hand-made numbers, and the check script."""
import json

import pytest
from check_targets import main as check_targets
from perf_targets import (FAIL, NOT_MEASURED, PASS, RATIO_TARGETS, REPORTED, evaluate,
                          failed_cases, load_run_results, ratio_results, run_results)

from lpd_bench.bench.report import MEASURE, write_csv
from lpd_bench.runner.results import SCHEMA


def row(case, median, preset='cpu', batch=2, size=224, peak=None):
    return dict(preset=preset, case=case, batch=batch, input_size=size, median_s=median,
                peak_mem_mib=peak, memory_method='test')


def by_name(results, name, preset=None):
    hits = [r for r in results if r.name == name and (preset is None or r.preset == preset)]
    assert hits, name
    return hits


def test_ratio_targets_pass_and_fail_on_hand_made_numbers():
    rows = [row('cam_step', 2.0), row('lpd_step_after', 2.9), row('lpd_step_before', 2.3),
            row('infer_single', 1.0), row('infer_tta', 7.0)]
    results = [r for t in RATIO_TARGETS if t.preset == 'cpu' for r in ratio_results(rows, t)]
    after = by_name(results, 'LPD step after warm-up / CAM step')[0]
    assert after.value == pytest.approx(1.45) and after.status == PASS
    before = by_name(results, 'LPD step before warm-up / CAM step')[0]
    assert before.value == pytest.approx(1.15) and before.status == FAIL
    tta = by_name(results, 'TTA (6 views) / single-view inference time')[0]
    assert tta.value == pytest.approx(7.0) and tta.status == FAIL


def test_speedup_target_is_at_least_and_per_batch():
    rows = [row('lpd_step_after', 4.0, 'paper', 2), row('lpd_step_after_straightforward', 9.0, 'paper', 2),
            row('backbone', 0.2, 'paper', 2),
            row('lpd_step_after', 10.0, 'paper', 10), row('backbone', 1.0, 'paper', 10)]
    speed = [t for t in RATIO_TARGETS if t.numerator == 'lpd_step_after_straightforward'][0]
    res = ratio_results(rows, speed)
    assert [(r.status, r.comparison) for r in res] == [(PASS, '>='), (NOT_MEASURED, '>=')]
    checked, reported = [t for t in RATIO_TARGETS if t.preset == 'paper' and t.denominator == 'backbone']
    (b2, ) = ratio_results(rows, checked)  # the 33x / 2 limit holds at batch 2 only
    assert b2.value == pytest.approx(20.0) and b2.status == FAIL and b2.limit == 16.5
    (b10, ) = ratio_results(rows, reported)  # other batches: reported, not checked
    assert b10.value == pytest.approx(10.0) and b10.status == REPORTED and b10.limit is None
    assert 'batch 10' in b10.detail


def test_missing_preset_is_not_measured():
    res = ratio_results([], RATIO_TARGETS[0])
    assert len(res) == 1 and res[0].status == NOT_MEASURED and res[0].value is None


def write_result(work_dir, run_id, peak, wall, seed=0, preset='cpu'):
    """A complete result.json (the runner's rule) of the run ``run_id`` in ``work_dir/runs``."""
    run_dir = work_dir / 'runs' / run_id
    run_dir.mkdir(parents=True)
    (run_dir / 'result.json').write_text(json.dumps(
        {'schema': SCHEMA, 'run_id': run_id, 'method': 'm', 'seed': seed, 'preset': preset,
         'config': 'c.py', 'cfg_options': {}, 'metrics': {'results': {}}, 'env': {},
         'cost': {'peak_rss_mb': peak, 'total_wall_s': wall}}))


def test_run_results_targets_from_runner_json(tmp_path):
    for i, (peak, wall, seed) in enumerate([(1000, 300, 0), (4500, 400, 0), (900, 5000, 1)]):
        write_result(tmp_path, f'r{i}', peak, wall, seed)
    (tmp_path / 'runs' / 'incomplete').mkdir()  # no result.json: ignored
    mem, wall = run_results(load_run_results(str(tmp_path)), str(tmp_path))
    assert mem.value == 4500 and mem.status == FAIL and 'r1' in mem.detail
    assert wall.value == 700 and wall.status == PASS  # seed 0 only: 300 + 400 s < 900 s
    none_mem, none_wall = run_results([], 'nowhere')
    assert none_mem.status == none_wall.status == NOT_MEASURED


def test_run_all_wall_time_read_from_plan_wall_json(tmp_path):
    work_dir = tmp_path / 'bench'
    for i, wall in enumerate([500, 600]):  # sum 1100 s: FAIL if summed
        write_result(work_dir, f'r{i}', 800, wall)
    assert run_results(load_run_results(str(work_dir)), str(work_dir))[1].value == 1100
    (work_dir / 'plan_wall.json').write_text(json.dumps({'wall_s': 650.5, 'runs': 2, 'jobs': 2}))
    _, wall = run_results(load_run_results(str(work_dir)), str(work_dir))
    assert wall.value == 650.5 and wall.status == PASS
    assert 'plan_wall.json' in wall.detail and '2 at a time' in wall.detail
    assert 'scaled' not in wall.detail
    # Seeds 0 1 2 with seed 0 already done: 26 of 39 runs executed -> one seed = 13/26 of it.
    (work_dir / 'plan_wall.json').write_text(json.dumps(
        {'wall_s': 1085.6, 'runs': 39, 'executed': 26, 'skipped': 13, 'jobs': 2,
         'seeds': [0, 1, 2]}))
    _, wall = run_results(load_run_results(str(work_dir)), str(work_dir))
    assert wall.value == pytest.approx(542.8) and wall.status == PASS
    assert "26 executed of 39 runs" in wall.detail and "scaled to one seed's 13 runs" in wall.detail
    (work_dir / 'plan_wall.json').write_text(json.dumps({'runs': 2}))
    with pytest.raises(ValueError, match='plan_wall.json: expected'):
        run_results(load_run_results(str(work_dir)), str(work_dir))


def test_incomplete_results_do_not_count(tmp_path):
    write_result(tmp_path, 'r0', 800, 100)
    (tmp_path / 'runs' / 'r1').mkdir()
    (tmp_path / 'runs' / 'r1' / 'result.json').write_text('{oops')  # a torn write
    (tmp_path / 'runs' / 'r2').mkdir()
    (tmp_path / 'runs' / 'r2' / 'result.json').write_text('{"run_id": "r2"}')  # no schema
    assert [r['run_id'] for r in load_run_results(str(tmp_path))] == ['r0']


def test_paper_memory_target_needs_batch_10():
    rows = [row('lpd_step_after', 5.0, 'paper', 2, peak=3000.0)]
    name = 'peak memory, paper setting, LPD step after warm-up, batch 10'
    assert by_name(evaluate(rows, [], 'x'), name)[0].status == NOT_MEASURED
    rows.append(row('lpd_step_after', 20.0, 'paper', 10, peak=9000.0))
    res = by_name(evaluate(rows, [], 'x'), name)[0]
    assert res.value == 9000.0 and res.status == FAIL


def test_cuda_rows_are_not_checked_against_the_cpu_targets():
    rows = [dict(row('lpd_step_after', 1.0, 'paper', 10), device='cuda'),
            dict(row('lpd_step_after_straightforward', 1.2, 'paper', 10), device='cuda')]
    results = evaluate(rows, [], '')
    speed = [r for r in results if r.name.startswith('speed-up')]
    assert [r.status for r in speed] == [NOT_MEASURED]
    rows = [dict(r, device='cpu') for r in rows]
    speed = [r for r in evaluate(rows, [], '') if r.name.startswith('speed-up')]
    assert [(r.status, round(r.value, 2)) for r in speed] == [(FAIL, 1.2)]


def test_ratio_is_the_median_of_per_round_ratios_when_timed_in_the_same_rounds():
    # round 2 is a slow phase of the machine for both cases: the per-round ratios stay 1.2
    lpd = dict(row('lpd_step_after', 1.2), session='s1', samples_s='1.2;6;1.2')
    cam = dict(row('cam_step', 1.9), session='s1', samples_s='1;5;1')
    target = [t for t in RATIO_TARGETS if t.numerator == 'lpd_step_after' and t.preset == 'cpu'][0]
    (res, ) = ratio_results([lpd, cam], target)
    assert res.value == pytest.approx(1.2) and 'median of 3 per-round ratios' in res.detail
    # other sessions (or no samples): the ratio of the medians
    (res, ) = ratio_results([lpd, dict(cam, session='s2')], target)
    assert res.value == pytest.approx(1.2 / 1.9) and 'ratio of the medians' in res.detail
    (res, ) = ratio_results([dict(lpd, samples_s=''), cam], target)
    assert res.value == pytest.approx(1.2 / 1.9)




def test_failed_cases_are_the_numerators_of_failed_ratio_targets():
    rows = [row('cam_step', 1.0), row('lpd_step_after', 2.0), row('lpd_step_before', 1.0),
            row('infer_single', 1.0), row('infer_tta', 3.0)]
    assert failed_cases(evaluate(rows, [], ''), 'cpu') == ['lpd_step_after']
    assert failed_cases(evaluate(rows, [], ''), 'paper') == []


def test_check_script_reads_the_bench_csv_and_fails_on_a_failed_target(tmp_path, capsys):
    rows = [dict(row('cam_step', 1.0), record=MEASURE), dict(row('lpd_step_after', 2.0),
                                                             record=MEASURE)]
    write_csv(str(tmp_path / 'perf.csv'), rows)
    write_csv(str(tmp_path / 'other' / 'perf.csv'), [dict(rows[0], case='lpd_step_before',
                                                          median_s=1.05)])
    out = tmp_path / 'targets.md'
    assert check_targets(['--reports', str(tmp_path), '--work-dir', str(tmp_path / 'none'),
                          '--out', str(out)]) == 1
    printed = capsys.readouterr().out
    assert 'FAIL         LPD step after warm-up / CAM step (cpu)' in printed
    assert '1 target(s) failed' in printed
    text = out.read_text()
    assert '| LPD step after warm-up / CAM step | cpu | 2x <= 1.5x | **FAIL** |' in text
    assert f'## {tmp_path / "other" / "perf.csv"}' in text  # other machines: what they measured
    write_csv(str(tmp_path / 'perf.csv'), rows[:1])
    assert check_targets(['--reports', str(tmp_path), '--work-dir', str(tmp_path / 'none')]) == 0
