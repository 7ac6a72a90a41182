"""`lpd-bench run --dataset luad`: each method's LUAD-HistoSeg config per preset from the method
registry, the same run ids in their own work dir, results that record their data set."""
import io
import os.path as osp

import pytest

from helpers import REPO, make_tools
from lpd_bench import apis
from lpd_bench.cli import main
from lpd_bench.methods import (DATASETS, MethodSpec, register_method, registered_methods,
                               unregister_method)
from lpd_bench.runner.commands import default_work_dir
from lpd_bench.runner.execute import Executor, RunConflict
from lpd_bench.runner.plan import build_plan, methods_without_config
from lpd_bench.runner.progress import Progress
from lpd_bench.runner.results import load_result

METHODS = [spec.name for spec in registered_methods()]
#: Each registered method's LUAD-HistoSeg configs: paper, CPU preset.
LUAD_CONFIGS = {name: (f'configs/{name}_luad.py', f'configs/{name}_luad_synth_cpu.py')
                for name in METHODS}


@pytest.fixture
def bcss_only():
    """A method registered with BCSS-WSSS configs only (the old form of ``configs``)."""
    spec = register_method(MethodSpec(name='bcssonly', label='B (test)',
                                      configs={'cpu': 'configs/x.py', 'paper': 'configs/y.py'}))
    yield spec
    unregister_method(spec.name)


def test_config_keys_old_and_new():
    spec = MethodSpec(name='m', label='M', configs={'cpu': 'a.py', ('luad', 'cpu'): 'b.py'})
    assert spec.config('cpu') == 'a.py' and spec.config('cpu', 'bcss') == 'a.py'
    assert spec.config('cpu', 'luad') == 'b.py'
    assert spec.config_files() == {('bcss', 'cpu'): 'a.py', ('luad', 'cpu'): 'b.py'}
    assert spec.has_config('cpu', 'luad') and not spec.has_config('paper', 'luad')
    with pytest.raises(ValueError, match="no config for dataset 'luad', preset 'paper'"):
        spec.config('paper', 'luad')
    with pytest.raises(ValueError, match="unknown dataset 'lung'"):
        spec.config('cpu', 'lung')
    with pytest.raises(ValueError, match=r"unknown config keys \[\('lung', 'cpu'\)\]"):
        MethodSpec(name='m', label='M', configs={('lung', 'cpu'): 'x.py'})
    with pytest.raises(ValueError, match='a preset is given twice'):
        MethodSpec(name='m', label='M', configs={'cpu': 'a.py', ('bcss', 'cpu'): 'b.py'})


@pytest.mark.parametrize('method', METHODS)
def test_every_method_states_its_luad_configs(method):
    spec = next(s for s in registered_methods() if s.name == method)
    paper, cpu = LUAD_CONFIGS[method]
    assert spec.config('paper', 'luad') == paper and spec.config('cpu', 'luad') == cpu
    assert set(spec.config_files()) == {(d, p) for d in DATASETS for p in ('cpu', 'paper')}
    for config in (paper, cpu):
        cfg = apis.load_config(str(REPO / config))
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[loader].dataset.type == 'LUADHistoSegDataset'
        assert cfg.test_dataloader.dataset.data_root == (
            None if 'synth_cpu' in config else 'data/LUAD-HistoSeg')


def test_luad_plan_has_the_bcss_run_ids_and_the_luad_configs():
    bcss = build_plan(all_runs=True, seeds=[0])
    luad = build_plan(all_runs=True, seeds=[0], dataset='luad')
    assert [s.run_id for s in luad] == [s.run_id for s in bcss]
    assert {s.dataset for s in luad} == {'luad'} and {s.dataset for s in bcss} == {'bcss'}
    for run in luad:
        assert run.config == LUAD_CONFIGS[run.method][1]
    paper = build_plan(['cam', 'lpd'], seeds=[1], preset='paper', data_root='/d',
                       dataset='luad')
    assert [(s.run_id, s.config, s.cfg_options) for s in paper] == [
        ('cam__seed1', 'configs/cam_luad.py', {'data_root': '/d'}),
        ('lpd__seed1', 'configs/lpd_luad.py', {'data_root': '/d'})]
    with pytest.raises(ValueError, match="unknown dataset 'lung'"):
        build_plan(['lpd'], dataset='lung')


def test_default_work_dir_per_dataset():
    assert default_work_dir() == 'work_dirs/bench' == default_work_dir('bcss')
    assert default_work_dir('luad') == 'work_dirs/bench_luad'


def test_dry_run_and_list_of_the_luad_plan(capsys, tmp_path):
    assert main(['run', 'cam', 'lpd', '--dataset', 'luad', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert 'configs/cam_luad_synth_cpu.py' in out and 'configs/lpd_luad_synth_cpu.py' in out
    assert '_bcss' not in out and 'configs/cam_synth_cpu.py' not in out
    # each with its stage-2 run on the data set's second-stage config
    assert 'lpd__stage2__seed0               configs/stage2_luad_synth_cpu.py' in out
    assert out.strip().endswith('4 runs')
    assert main(['list', 'cam', '--dataset', 'luad', '--preset', 'paper',
                 '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'todo     cam__seed0' in out and 'configs/cam_luad.py' in out


def test_method_without_luad_config_is_skipped_with_a_message(bcss_only, capsys):
    assert methods_without_config(all_runs=True, dataset='luad') == ['bcssonly']
    assert methods_without_config(all_runs=True) == []
    assert 'bcssonly__seed0' not in {s.run_id for s in build_plan(all_runs=True,
                                                                   dataset='luad')}
    assert main(['run', 'bcssonly', 'cam', '--dataset', 'luad', '--dry-run']) == 0
    captured = capsys.readouterr()
    assert 'skipped bcssonly: no config for dataset luad, preset cpu' in captured.err
    assert 'cam__seed0' in captured.out and 'bcssonly' not in captured.out
    with pytest.raises(SystemExit, match='nothing to run for dataset luad, preset cpu'):
        main(['run', 'bcssonly', '--dataset', 'luad', '--dry-run'])


def test_results_record_their_dataset_and_a_work_dir_keeps_one(tmp_path, monkeypatch):
    from lpd_bench.analysis import specialisation
    monkeypatch.setattr(specialisation, 'has_submorphology', lambda *args, **kwargs: False)
    tools = make_tools(tmp_path)
    plan = build_plan(['cam'], seeds=[0], dataset='luad')
    executor = Executor(tmp_path / 'w', Progress(1, stream=io.StringIO()), tools, jobs=1)
    assert executor.run_plan(plan) == {'cam__seed0': 'done'}
    result = load_result(tmp_path / 'w' / 'runs' / 'cam__seed0')
    assert result['dataset'] == 'luad' and result['config'] == 'configs/cam_luad_synth_cpu.py'
    assert result['synthetic'] is True and result['data_root'] is None
    bcss = build_plan(['cam'], seeds=[0])[0]
    with pytest.raises(RunConflict, match="'dataset': 'luad'"):
        Executor.check_same_config(bcss, result, tmp_path / 'w' / 'runs' / 'cam__seed0')
    del result['dataset'], result['config']  # a result written before LUAD: BCSS-WSSS's
    result['config'] = bcss.config
    Executor.check_same_config(bcss, result, tmp_path)
    with pytest.raises(RunConflict, match="'dataset': 'bcss'"):
        Executor.check_same_config(plan[0], result, tmp_path)


def test_luad_configs_are_the_bcss_ones_reading_luad():
    """Model, schedule and test protocol equal the BCSS-WSSS config's; only the data differs."""
    for name in METHODS:
        for preset, suffix in (('paper', '_bcss'), ('cpu', '_synth_cpu')):
            luad = apis.load_config(str(REPO / LUAD_CONFIGS[name][preset == 'cpu']))
            bcss = apis.load_config(str(REPO / f'configs/{name}{suffix}.py'))
            for key in ('train_cfg', 'optim_wrapper', 'param_scheduler', 'test_cfg'):
                assert luad.get(key) == bcss.get(key), (name, preset, key)
            model = luad.model.to_dict()
            expected = bcss.model.to_dict()
            for settings in (model, expected):  # what the LUAD configs set on purpose
                init = (settings.get('backbone') or {}).get('init_cfg') or {}
                init.pop('layout', None)
                refiner = (settings.get('decode_head') or {}).get('refiner_loss') or {}
                (refiner.get('encoder') or {}).get('backbone', {}).pop('layout', None)
                (settings.get('decode_head') or {}).get('prototypes', {}).pop('bank_path', None)
            assert model == expected, (name, preset)
            assert osp.basename(luad.filename).startswith(name)
