"""The runner's stage-2 runs with fake tools: the plan (which runs get one, their options), the
dependency on stage 1 (never before it ends; failed with it), the result (pseudo-mask quality,
both stages' cost), resume, and the pseudo-mask command's several splits."""
import io
import json

import pytest

from helpers import make_tools

from lpd_bench.runner.execute import Executor
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.progress import Progress
from lpd_bench.runner.results import load_result, read_json
from lpd_bench.stage2.runs import STAGE2_CONFIGS, stage2_config



@pytest.fixture(autouse=True)
def no_submorphology(monkeypatch):
    from lpd_bench.analysis import specialisation
    monkeypatch.setattr(specialisation, 'has_submorphology', lambda *args, **kwargs: False)


@pytest.fixture
def tools(tmp_path):
    return make_tools(tmp_path)


def run(work_dir, tools, plan, jobs=1):
    executor = Executor(work_dir, Progress(len(plan), stream=io.StringIO(), jobs=jobs), tools,
                        jobs=jobs)
    return executor.run_plan(plan)


def test_each_main_run_of_a_trained_method_gets_a_stage2_run_after_its_seed():
    plan = build_plan(['colour_rule', 'cam', 'lpd'], seeds=[0, 1], stage2=True,
                      extra_options={'train_cfg.max_iters': '2', 'model.test_cfg.flip': 'False'})
    ids = [run.run_id for run in plan]
    assert ids == ['colour_rule__seed0', 'cam__seed0', 'lpd__seed0', 'cam__stage2__seed0',
                   'lpd__stage2__seed0', 'colour_rule__seed1', 'cam__seed1', 'lpd__seed1',
                   'cam__stage2__seed1', 'lpd__stage2__seed1']
    second = {run.run_id: run for run in plan if run.stage == 2}
    lpd = second['lpd__stage2__seed1']
    assert lpd.depends_on == 'lpd__seed1' and lpd.method == 'lpd' and lpd.seed == 1
    assert lpd.config == 'configs/stage2_synth_cpu.py'
    # the schedule reaches stage 2, the stage-1 model's own knob does not
    assert lpd.cfg_options == {'train_cfg.max_iters': '2'}
    assert lpd.memberships == [{'name': 'main', 'value': 'LPD'}]
    # without stage2, or for ablation points (not the main table), none
    assert not any(r.stage == 2 for r in build_plan(['cam', 'lpd'], stage2=False))
    assert not any(r.stage == 2 for r in build_plan(['num_per_class'], stage2=True))


def test_stage2_configs_exist_for_every_dataset_and_preset():
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    for key, path in STAGE2_CONFIGS.items():
        assert (repo / path).is_file(), (key, path)
    assert stage2_config('bcss', 'cpu') == 'configs/stage2_synth_cpu.py'
    assert stage2_config('luad', 'paper') == 'configs/stage2_segformer_b1_luad.py'


def test_stage2_run_waits_for_stage1_and_records_both_stages(tmp_path, tools, monkeypatch):
    monkeypatch.setenv('FAKE_SLEEP', '0.2')
    plan = build_plan(['cam'], seeds=[0], stage2=True)
    assert run(tmp_path / 'w', tools, plan, jobs=2) == {'cam__seed0': 'done',
                                                         'cam__stage2__seed0': 'done'}
    runs = tmp_path / 'w' / 'runs'
    stage1_end = float((runs / 'cam__seed0' / 'interval.txt').read_text().split()[1])
    assert float((runs / 'cam__stage2__seed0' / 'pm_started.txt').read_text()) >= stage1_end
    first, second = load_result(runs / 'cam__seed0'), load_result(runs / 'cam__stage2__seed0')
    assert 'stage' not in first and second['stage'] == 2
    assert second['source_run'] == 'cam__seed0' and second['method'] == 'cam'
    assert second['config'] == 'configs/stage2_synth_cpu.py'
    masks = second['pseudo_masks']
    assert masks['val']['mIoU'] == 40.0 and 'mIoU' not in masks['train']
    assert masks['train']['dir'] == str((runs / 'cam__stage2__seed0' / 'pseudo_masks' /
                                         'train').resolve())
    # the second stage trains on the train pseudo-masks
    assert second['cfg_options']['pseudo_mask_dir'] == masks['train']['dir']
    assert [s['name'] for s in second['cost']['stages']] == ['pseudo_masks', 'train', 'test']
    cost = second['cost']
    assert cost['stage1_wall_s'] == first['cost']['total_wall_s']
    assert cost['both_stages_wall_s'] == pytest.approx(cost['stage1_wall_s']
                                                       + cost['total_wall_s'], abs=1e-3)
    # no snapshots of a stage-2 run (the report's figures are stage 1's)
    assert not (runs / 'cam__stage2__seed0' / 'snapshot_args.txt').exists()
    # a rerun skips both
    assert run(tmp_path / 'w', tools, plan) == {'cam__seed0': 'skipped',
                                                'cam__stage2__seed0': 'skipped'}


def test_stage2_fails_with_its_stage1_run_and_the_plan_goes_on(tmp_path, tools, monkeypatch):
    monkeypatch.setenv('FAKE_TEST_FAIL', 'iter_6.pth')
    plan = build_plan(['cam'], seeds=[0], stage2=True)
    assert run(tmp_path / 'w', tools, plan) == {'cam__seed0': 'failed',
                                                'cam__stage2__seed0': 'failed'}
    failed = read_json(tmp_path / 'w' / 'runs' / 'cam__stage2__seed0' / 'failed.json')
    assert 'its stage-1 run cam__seed0 has no result' in failed['error']
    # fixed and rerun: both are done, stage 1 resumed (its training is not redone)
    monkeypatch.delenv('FAKE_TEST_FAIL')
    assert run(tmp_path / 'w', tools, plan) == {'cam__seed0': 'done', 'cam__stage2__seed0': 'done'}
    starts = (tmp_path / 'w' / 'runs' / 'cam__seed0' / 'starts.txt').read_text().split()
    assert starts == ['0']


def test_a_failed_pseudo_mask_step_fails_the_stage2_run_only(tmp_path, tools, monkeypatch):
    monkeypatch.setenv('FAKE_PM_FAIL', '1')
    plan = build_plan(['cam'], seeds=[0], stage2=True)
    assert run(tmp_path / 'w', tools, plan) == {'cam__seed0': 'done',
                                                'cam__stage2__seed0': 'failed'}
    failed = read_json(tmp_path / 'w' / 'runs' / 'cam__stage2__seed0' / 'failed.json')
    assert failed['stage'] == 'pseudo_masks' and 'pseudo-mask boom' in failed['log_tail']


def test_stage2_runs_of_a_seed_start_before_the_next_seeds_stage1(tmp_path, tools, monkeypatch):
    monkeypatch.setenv('FAKE_SLEEP', '0.05')
    plan = build_plan(['cam'], seeds=[0, 1], stage2=True)
    assert set(run(tmp_path / 'w', tools, plan).values()) == {'done'}
    runs = tmp_path / 'w' / 'runs'
    stage2_start = float((runs / 'cam__stage2__seed0' / 'pm_started.txt').read_text())
    seed1_start = float((runs / 'cam__seed1' / 'interval.txt').read_text().split()[0])
    assert stage2_start < seed1_start


def test_ready_runs_start_by_seed_then_stage2_then_trained_methods_then_plan_order():
    from lpd_bench.runner.execute import start_priority
    plan = build_plan(['colour_rule', 'cam', 'lpd'], seeds=[0, 1], stage2=True)
    order = [spec.run_id for _, spec in sorted(enumerate(plan, 1),
                                               key=lambda pair: start_priority(*pair))]
    # the colour rule (nothing to train, a short run) last in its seed
    assert order == ['cam__stage2__seed0', 'lpd__stage2__seed0', 'cam__seed0', 'lpd__seed0',
                     'colour_rule__seed0', 'cam__stage2__seed1', 'lpd__stage2__seed1',
                     'cam__seed1', 'lpd__seed1', 'colour_rule__seed1']
