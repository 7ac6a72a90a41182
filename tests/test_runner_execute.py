"""Executor with fake train/test/bank tools: skip, resume after a kill, failures, atomic results,
concurrent runs (--jobs)."""
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import make_tools

from lpd_bench.runner.execute import Executor, available_cores
from lpd_bench.methods import ExtraStage, MethodSpec, register_method, unregister_method
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.progress import Progress
from lpd_bench.runner.results import (PLAN_WALL_FILE, last_checkpoint, load_result, read_json,
                                     run_status, write_json_atomic)

REPO = Path(__file__).resolve().parents[1]

@pytest.fixture
def tools(tmp_path):
    return make_tools(tmp_path)


@pytest.fixture(autouse=True)
def no_submorphology(monkeypatch):
    """These runs stand for data without sub-morphology maps (real BCSS-WSSS): LPD's
    specialisation post-stage does not apply (tests/test_analysis_specialisation.py covers it)."""
    from lpd_bench.analysis import specialisation
    monkeypatch.setattr(specialisation, 'has_submorphology', lambda *args, **kwargs: False)


#: A two-stage method registered by the tests only: a shared pre-stage (the fake bank tool)
#: whose output fills BANK_KEY, and a post-stage (the same tool) on the last checkpoint.
BANK_KEY = 'model.decode_head.prototypes.bank_path'
TWO_STAGE = MethodSpec(
    name='twostage', label='Two-stage (test)', configs={'cpu': 'configs/pbip_synth_cpu.py'},
    defaults={'k': 3}, knob_tags={'k': lambda k: f'k{k}'},
    pre_stages=(ExtraStage('fake_bank', ('tools/bank.py', ), 'fake_banks', config_key=BANK_KEY,
                           args=lambda run: ['--num-per-class', run.cfg_options.get('k', 3)]), ),
    post_stages=(ExtraStage('fake_post', ('tools/bank.py', ), 'fake_posts', suffix='.out'), ))


@pytest.fixture
def two_stage():
    register_method(TWO_STAGE)
    yield TWO_STAGE
    unregister_method(TWO_STAGE.name)


def executor(work_dir, tools, stream=None, jobs=1, runs=1):
    return Executor(work_dir, Progress(runs, stream=stream or io.StringIO(), jobs=jobs), tools,
                    jobs=jobs)


def test_run_writes_complete_result_and_skips_it_on_rerun(tmp_path, tools):
    plan = build_plan(['lpd'], seeds=[1])
    out = io.StringIO()
    assert executor(tmp_path / 'w', tools, out).run_plan(plan) == {'lpd__seed1': 'done'}
    run_dir = tmp_path / 'w' / 'runs' / 'lpd__seed1'
    result = load_result(run_dir)
    assert result['metrics']['results']['oracle']['bg_counted']['mIoU'] == pytest.approx(51.6)
    assert result['cfg_options']['randomness.seed'] == 1
    assert result['protocol']['checkpoint'] == 'last'
    assert result['protocol']['checkpoint_path'].endswith('iter_6.pth')
    assert [s['name'] for s in result['cost']['stages']] == ['train', 'test']  # no best saved
    assert result['metrics_by_checkpoint'] == {'last': result['metrics'], 'best': None}
    assert result['checkpoints'] == {'last': result['protocol']['checkpoint_path'], 'best': None}
    assert result['cost']['stages'][0]['iters'] == 6 and result['cost']['peak_rss_mb'] > 0
    assert result['cost']['stages'][0]['loop_wall_s'] == 0.5
    assert set(result['env']['packages']) == {'torch', 'mmengine', 'mmcv', 'mmseg', 'numpy', 'faiss'}
    assert 'Iter(train) [  6/6]' in (run_dir / 'run.log').read_text()
    assert 'train 6/6 (100%)' in out.getvalue()
    assert '--num-images 4' in (run_dir / 'snapshot_args.txt').read_text()  # a main run
    # Rerun: skipped, the training is not started again.
    assert executor(tmp_path / 'w', tools).run_plan(plan) == {'lpd__seed1': 'skipped'}
    assert (run_dir / 'starts.txt').read_text().split() == ['0']
    assert read_json(tmp_path / 'w' / PLAN_WALL_FILE)['skipped'] == 1


def test_rerun_with_other_data_in_same_work_dir_is_refused(tmp_path, tools):
    executor(tmp_path / 'w', tools).run_plan(build_plan(['cam'], seeds=[0]))
    other = build_plan(['cam'], seeds=[0], data_root=str(tmp_path))
    assert executor(tmp_path / 'w', tools).run_plan(other) == {'cam__seed0': 'failed'}
    failed = json.loads((tmp_path / 'w' / 'runs' / 'cam__seed0' / 'failed.json').read_text())
    assert 'another configuration' in failed['error']


def test_failing_run_is_reported_and_others_continue(tmp_path, tools):
    plan = build_plan(['cam', 'lpd'], seeds=[0])
    plan[0].cfg_options['model.decode_head.refiner_loss'] = 'fail'  # the fake train exits 3
    out = io.StringIO()
    outcome = executor(tmp_path / 'w', tools, out).run_plan(plan)
    assert outcome == {'cam__seed0': 'failed', 'lpd__seed0': 'done'}
    assert 'Traceback: boom' in out.getvalue()  # the log tail is shown
    assert run_status(tmp_path / 'w' / 'runs' / 'cam__seed0') == 'failed'
    failed = json.loads((tmp_path / 'w' / 'runs' / 'cam__seed0' / 'failed.json').read_text())
    assert failed['stage'] == 'train' and 'exit code 3' in failed['error']


def test_pre_stage_built_once_per_key_and_passed_to_training(tmp_path, tools, two_stage):
    plan = build_plan(['twostage'], seeds=[0, 1])
    executor(tmp_path / 'w', tools).run_plan(plan)
    (tmp_path / 'w' / 'runs' / 'twostage__seed0' / 'result.json').unlink()
    executor(tmp_path / 'w', tools).run_plan(plan)  # reruns seed 0 only, reuses its output
    calls = (tmp_path / 'w' / 'fake_banks' / 'bank_calls.txt').read_text().splitlines()
    assert len(calls) == 2 and '--seed 0' in calls[0] and '--num-per-class 3' in calls[0]
    assert calls[0].startswith('configs/pbip_synth_cpu.py --out ')
    result = load_result(tmp_path / 'w' / 'runs' / 'twostage__seed0')
    assert [s['name'] for s in result['cost']['stages']] == [
        'fake_bank', 'train', 'test', 'fake_post']
    assert result['cost']['stages'][0]['shared'] is True
    assert result['cfg_options'][BANK_KEY] == result['cost']['stages'][0]['path']


def test_post_stage_runs_on_the_last_checkpoint_with_the_training_options(tmp_path, tools,
                                                                          two_stage):
    executor(tmp_path / 'w', tools).run_plan(build_plan(['twostage'], seeds=[0]))
    call = (tmp_path / 'w' / 'fake_posts' / 'bank_calls.txt').read_text().splitlines()
    assert len(call) == 1
    args = call[0].split()
    assert args[args.index('--checkpoint') + 1].endswith('iter_6.pth')
    assert 'randomness.seed=0' in args and any(a.startswith(BANK_KEY + '=') for a in args)
    result = load_result(tmp_path / 'w' / 'runs' / 'twostage__seed0')
    post = result['cost']['stages'][-1]
    assert post['path'].endswith('.out') and Path(post['path']).is_file()


def test_pbip_spec_runs_its_bank_stage_before_training(tmp_path, tools):
    tools.stages['prototype_bank'] = [str(Path(tools.train).parent / 'bank.py')]
    executor(tmp_path / 'w', tools).run_plan(build_plan(['pbip'], seeds=[0]))
    result = load_result(tmp_path / 'w' / 'runs' / 'pbip__seed0')
    assert result['cost']['stages'][0]['name'] == 'prototype_bank'
    assert result['cfg_options'][BANK_KEY] == result['cost']['stages'][0]['path']
    assert (tmp_path / 'w' / 'banks' / 'bank_calls.txt').is_file()


def test_half_written_result_is_not_complete(tmp_path):
    run_dir = tmp_path / 'r'
    run_dir.mkdir()
    (run_dir / '.result.json.x.tmp').write_text('{"schema": 1')  # an interrupted atomic write
    assert load_result(run_dir) is None and run_status(run_dir) == 'todo'
    (run_dir / 'result.json').write_text('{"schema": 1, "run_id": "x"')  # truncated
    assert load_result(run_dir) is None
    write_json_atomic(run_dir / 'result.json', {'schema': 1, 'run_id': 'x'})  # keys missing
    assert load_result(run_dir) is None
    assert [p.name for p in run_dir.iterdir() if p.name.endswith('.tmp')] == ['.result.json.x.tmp']


def start_runner(tools, tmp_path, work, names, jobs=1):
    """The runner with the fake tools in its own session (slow fake training, 40 iterations)."""
    script = textwrap.dedent(f'''
        import sys
        from lpd_bench.runner.execute import Executor, PlanInterrupted, Tools
        from lpd_bench.runner.plan import build_plan
        from lpd_bench.runner.progress import Progress
        tools = Tools(train={tools.train!r}, test={tools.test!r}, stages={tools.stages!r},
                      snapshot={tools.snapshot!r}, cwd={str(tmp_path)!r})
        try:
            Executor({str(work)!r}, Progress({len(names)}), tools, jobs={jobs}).run_plan(
                build_plan({names!r}, seeds=[0]))
        except PlanInterrupted as err:
            sys.exit(128 + err.signum)
    ''')
    env = {**os.environ, 'FAKE_SLEEP': '0.2', 'FAKE_ITERS': '40'}
    return subprocess.Popen([sys.executable, '-c', script], env=env, cwd=tmp_path,
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(path, timeout=30):
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_killed_run_resumes_from_its_checkpoint(tmp_path, tools, monkeypatch):
    """Kill the runner (and its fake training) mid-way, rerun: training resumes, result appears."""
    work = tmp_path / 'w'
    proc = start_runner(tools, tmp_path, work, ['lpd'])
    run_dir = work / 'runs' / 'lpd__seed0'
    wait_for(run_dir / 'iter_3.pth')
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_status(run_dir) == 'partial', proc.stderr.read()
    assert not (run_dir / 'result.json').exists()
    reached = int(Path((run_dir / 'last_checkpoint').read_text()).stem.split('_')[1])
    assert 3 <= reached < 40

    monkeypatch.setenv('FAKE_ITERS', '40')
    assert executor(work, tools).run_plan(build_plan(['lpd'], seeds=[0])) == {'lpd__seed0': 'done'}
    starts = [int(s) for s in (run_dir / 'starts.txt').read_text().split()]
    assert starts == [0, reached]
    result = load_result(run_dir)
    assert result['cost']['stages'][0]['resumed'] is True
    assert result['protocol']['checkpoint_path'].endswith('iter_40.pth')


def test_empty_checkpoint_pointer_falls_back_to_newest_checkpoint(tmp_path):
    for it in (2, 10, 9):
        (tmp_path / f'iter_{it}.pth').write_text(str(it))
    (tmp_path / 'last_checkpoint').write_text('')  # killed while MMEngine rewrote it
    assert last_checkpoint(tmp_path).name == 'iter_10.pth'
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_10.pth')
    assert run_status(tmp_path) == 'partial'


def test_sigterm_stops_all_running_stages_and_leaves_runs_resumable(tmp_path, tools, monkeypatch):
    work = tmp_path / 'w'
    proc = start_runner(tools, tmp_path, work, ['cam', 'lpd'], jobs=2)
    runs = [work / 'runs' / run_id for run_id in ('cam__seed0', 'lpd__seed0')]
    for run_dir in runs:
        wait_for(run_dir / 'iter_2.pth')
    os.kill(proc.pid, signal.SIGTERM)  # the runner only: it must stop its children itself
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM, proc.stderr.read()
    reached = [(r / 'last_checkpoint').read_text() for r in runs]
    time.sleep(0.5)  # the fake trainings are dead: no checkpoint appears any more
    assert [(r / 'last_checkpoint').read_text() for r in runs] == reached
    assert [run_status(r) for r in runs] == ['partial', 'partial']  # not failed, no result
    monkeypatch.setenv('FAKE_ITERS', '40')
    outcome = executor(work, tools, jobs=2).run_plan(build_plan(['cam', 'lpd'], seeds=[0]))
    assert outcome == {'cam__seed0': 'done', 'lpd__seed0': 'done'}
    assert all(load_result(r)['cost']['stages'][0]['resumed'] for r in runs)


def test_two_jobs_overlap_with_their_share_of_the_threads(tmp_path, tools, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setenv('FAKE_ITERS', '4')
    monkeypatch.setenv('FAKE_SLEEP', '0.5')  # each fake training lasts ~2 s
    out = io.StringIO()
    start = time.monotonic()
    outcome = executor(tmp_path / 'w', tools, out, jobs=2, runs=2).run_plan(
        build_plan(['cam', 'lpd'], seeds=[0]))
    elapsed = time.monotonic() - start
    assert outcome == {'cam__seed0': 'done', 'lpd__seed0': 'done'}
    runs = [tmp_path / 'w' / 'runs' / run_id for run_id in outcome]
    (a0, a1), (b0, b1) = (map(float, (r / 'interval.txt').read_text().split()) for r in runs)
    assert a0 < b1 and b0 < a1  # the trainings ran at the same time
    assert elapsed < (a1 - a0) + (b1 - b0)  # sequential: both trainings plus the other stages
    plan_wall = read_json(tmp_path / 'w' / PLAN_WALL_FILE)  # the plan's own wall time
    assert plan_wall['wall_s'] == pytest.approx(elapsed, abs=0.5)
    assert plan_wall['wall_s'] < sum(load_result(r)['cost']['total_wall_s'] for r in runs)
    assert {k: plan_wall[k] for k in ('runs', 'executed', 'skipped', 'failed', 'jobs')} == {
        'runs': 2, 'executed': 2, 'skipped': 0, 'failed': 0, 'jobs': 2}
    threads = max(1, available_cores() // 2)
    for run_dir in runs:
        assert (run_dir / 'threads.txt').read_text() == str(threads)
        assert {k: load_result(run_dir)['env'][k] for k in ('threads', 'jobs')} == {
            'threads': threads, 'jobs': 2}
    lines = out.getvalue().splitlines()  # progress lines name their run
    assert any(line.startswith('[1/2] cam__seed0: train train 4/4 (100%)') for line in lines)
    assert any(line.startswith('[2/2] lpd__seed0: train train 4/4 (100%)') for line in lines)


def test_user_thread_setting_is_kept(tmp_path, tools, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    executor(tmp_path / 'w', tools, jobs=2).run_plan(build_plan(['cam', 'lpd'], seeds=[0]))
    run_dir = tmp_path / 'w' / 'runs' / 'cam__seed0'
    assert (run_dir / 'threads.txt').read_text() == '3'
    assert load_result(run_dir)['env']['threads'] == 3


def test_shared_pre_stage_built_once_by_concurrent_runs(tmp_path, tools, monkeypatch, two_stage):
    monkeypatch.setenv('FAKE_BANK_SLEEP', '0.5')  # the second run arrives while it is built
    spec = build_plan(['twostage'], seeds=[0])[0]
    twin = dataclasses.replace(spec, run_id='twostage_twin__seed0')
    stage = two_stage.pre_stages[0]
    assert stage.key(twin) == stage.key(spec)
    outcome = executor(tmp_path / 'w', tools, jobs=2).run_plan([spec, twin])
    assert outcome == {'twostage__seed0': 'done', 'twostage_twin__seed0': 'done'}
    assert len((tmp_path / 'w' / 'fake_banks' / 'bank_calls.txt').read_text().splitlines()) == 1
    banks = [load_result(tmp_path / 'w' / 'runs' / r)['cost']['stages'][0] for r in outcome]
    assert sorted(b['shared'] for b in banks) == [False, True]
    assert banks[0]['path'] == banks[1]['path']


def test_failing_run_does_not_stop_the_concurrent_one(tmp_path, tools, monkeypatch):
    monkeypatch.setenv('FAKE_SLEEP', '0.05')
    plan = build_plan(['cam', 'lpd'], seeds=[0])
    plan[0].cfg_options['model.decode_head.refiner_loss'] = 'fail'
    out = io.StringIO()
    outcome = executor(tmp_path / 'w', tools, out, jobs=2, runs=2).run_plan(plan)
    assert outcome == {'cam__seed0': 'failed', 'lpd__seed0': 'done'}
    assert '[1/2] cam__seed0: FAILED cam__seed0: train failed: exit code 3' in out.getvalue()
    assert run_status(tmp_path / 'w' / 'runs' / 'cam__seed0') == 'failed'


def test_method_with_a_checkpoint_stage_is_tested_on_its_output_without_training(tmp_path, tools):
    (tmp_path / 'tools' / 'fit.py').write_text(
        'import sys\nfrom pathlib import Path\n'
        "Path(sys.argv[sys.argv.index('--out') + 1]).write_text('7')\n")
    fitted = MethodSpec(
        name='fitted', label='Fitted (test)', configs={'cpu': 'configs/lpd_synth_cpu.py'},
        pre_stages=(ExtraStage('fit', ('tools/fit.py', ), 'fits'), ), checkpoint_stage='fit')
    register_method(fitted)
    try:
        executor(tmp_path / 'w', tools).run_plan(build_plan(['fitted'], seeds=[0]))
    finally:
        unregister_method('fitted')
    run_dir = tmp_path / 'w' / 'runs' / 'fitted__seed0'
    result = load_result(run_dir)
    assert [s['name'] for s in result['cost']['stages']] == ['fit', 'test']
    assert not (run_dir / 'starts.txt').exists()  # the fake train tool never ran
    assert result['checkpoints'] == {'last': result['cost']['stages'][0]['path'], 'best': None}
    assert (run_dir / 'tested.txt').read_text().split() == [
        Path(result['checkpoints']['last']).name]
    assert result['metrics']['results']['oracle']['bg_counted']['mIoU'] == pytest.approx(50.7)


def test_checkpoint_stage_must_be_a_pre_stage():
    with pytest.raises(ValueError, match="checkpoint_stage 'fit' is not one of its pre_stages"):
        MethodSpec(name='x', label='X', configs={'cpu': 'c.py'}, checkpoint_stage='fit')


def test_stage_whose_condition_is_false_is_skipped(tmp_path, tools):
    skipped = MethodSpec(
        name='conditional', label='Conditional (test)', configs={'cpu': 'configs/lpd_synth_cpu.py'},
        post_stages=(ExtraStage('never', ('tools/bank.py', ), 'nevers', when=lambda run: False),
                     ExtraStage('always', ('tools/bank.py', ), 'alwayss', suffix='.out',
                                when=lambda run: run.seed == 0)))
    register_method(skipped)
    try:
        executor(tmp_path / 'w', tools).run_plan(build_plan(['conditional'], seeds=[0]))
    finally:
        unregister_method('conditional')
    result = load_result(tmp_path / 'w' / 'runs' / 'conditional__seed0')
    assert [s['name'] for s in result['cost']['stages']] == ['train', 'test', 'always']
    assert not (tmp_path / 'w' / 'nevers').exists()


def test_shared_pretrained_weights_are_prepared_once_before_the_runs(tmp_path, tools,
                                                                     monkeypatch, tiny_data):
    """The CPU preset's backbone (and a pretrained refiner encoder) asked for by every run is
    built once by the runner itself, not by each run; nothing for done runs or absent configs."""
    import shutil

    from lpd_bench.models import backbone_pretraining as bp
    from lpd_bench.models import encoder_pretraining as ep
    shutil.copytree(REPO / 'configs', tmp_path / 'configs')  # the fake tools' folder (cwd)
    tools.stages['specialisation'] = ('tools/bank.py', )  # a fake of LPD's post-stage too
    calls = {'backbone': [], 'encoder': []}

    def fake_backbone_path(module, data_root, input_size, build=True, progress=None,
                           layout='bcss', **settings):
        calls['backbone'].append((type(module).__name__, module.init_cfg, data_root,
                                  tuple(input_size), build, layout, settings))
        progress('backbone pretraining: (fake)')
        return tmp_path / 'backbone.pth'

    def fake_encoder_path(encoder_cfg, data_root, cutout_size, progress=None, layout='bcss',
                          **settings):
        calls['encoder'].append((encoder_cfg['type'], data_root, cutout_size, layout, settings))
        return tmp_path / 'encoder.pth'

    monkeypatch.setattr(bp, 'pretrained_backbone_path', fake_backbone_path)
    monkeypatch.setattr(ep, 'pretrained_encoder_path', fake_encoder_path)
    plan = build_plan(['cam', 'lpd'], seeds=[0, 1], data_root=tiny_data,
                      extra_options={'cpu_encoder': 'pretrained',
                                     'model.backbone.init_cfg.pretrain': {'iters': 5}})
    assert len(plan) == 4
    out = io.StringIO()
    outcome = executor(tmp_path / 'w', tools, out, jobs=2, runs=4).run_plan(plan)
    assert set(outcome.values()) == {'done'}
    assert calls['backbone'] == [('MixVisionTransformer', None, tiny_data, (112, 112), True,
                                  'bcss', {'iters': 5})]  # once for the four runs of two methods
    assert calls['encoder'] == [('PatchMLPEncoder', tiny_data, 16, 'bcss', {})]  # lpd's only
    lines = out.getvalue().splitlines()
    assert 'backbone pretraining: (fake)' in lines
    assert any(line.startswith('shared weights: backbone ready (') for line in lines)
    assert lines.index('backbone pretraining: (fake)') < min(
        i for i, line in enumerate(lines) if 'start' in line)  # before the runs
    assert read_json(tmp_path / 'w' / PLAN_WALL_FILE)['shared_weights_s'] >= 0
    # a rerun of the done runs prepares nothing; a config asking for nothing neither
    executor(tmp_path / 'w', tools).run_plan(plan)
    executor(tmp_path / 'v', tools).run_plan(build_plan(['cam'], seeds=[0], data_root=tiny_data,
                                                        extra_options={'backbone_init': 'scratch'}))
    assert len(calls['backbone']) == 1 and len(calls['encoder']) == 1


def test_stage_output_cannot_share_the_marker_name():
    """An output suffixed like the runner's marker (<key>.json) would be overwritten by it."""
    with pytest.raises(ValueError, match='marker'):
        ExtraStage('clash', ('tools/bank.py', ), 'clashes', suffix='.json')


def test_the_training_process_tests_what_it_trained(tmp_path, tools, monkeypatch):
    """tools/train.py --test-after: stage test is recorded from the training process (its own
    time, taken out of the training's), and no test process runs; a rerun after a lost result
    tests nothing again."""
    monkeypatch.setenv('FAKE_TEST_AFTER', '1')
    plan = build_plan(['cam'], seeds=[0])
    assert executor(tmp_path / 'w', tools).run_plan(plan) == {'cam__seed0': 'done'}
    run_dir = tmp_path / 'w' / 'runs' / 'cam__seed0'
    assert not (run_dir / 'tested.txt').exists()  # the fake test tool never ran
    result = load_result(run_dir)
    assert result['metrics']['results']['oracle']['bg_counted']['mIoU'] == 77.0
    stages = {s['name']: s for s in result['cost']['stages']}
    assert stages['test']['in_training_process'] and stages['test']['wall_s'] == 0.25
    attempts = [json.loads(line) for line in (run_dir / 'attempts.jsonl').read_text().splitlines()]
    assert [a['stage'] for a in attempts if a['stage'] != 'snapshots'] == ['train']
    assert stages['train']['wall_s'] == pytest.approx(attempts[0]['wall_s'] - 0.25, abs=1e-3)
    (run_dir / 'result.json').unlink()
    assert executor(tmp_path / 'w', tools).run_plan(plan) == {'cam__seed0': 'done'}
    assert not (run_dir / 'tested.txt').exists()
    # without the in-process test (an older tools/train.py), the test process tests it
    monkeypatch.delenv('FAKE_TEST_AFTER')
    assert executor(tmp_path / 'v', tools).run_plan(plan) == {'cam__seed0': 'done'}
    assert (tmp_path / 'v' / 'runs' / 'cam__seed0' / 'tested.txt').read_text() == 'iter_6.pth\n'
