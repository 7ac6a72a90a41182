"""`lpd-bench run --dry-run` and `lpd-bench list` through the CLI."""
import pytest

from lpd_bench.cli import main
from lpd_bench.methods import registered_methods
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.results import write_json_atomic


def test_dry_run_prints_the_plan(capsys):
    assert main(['run', '--all', '--seeds', '0', '1', '--dry-run']) == 0
    out = capsys.readouterr().out
    runs = len(build_plan(all_runs=True, seeds=[0, 1], stage2=True))
    assert out.strip().endswith(f'{runs} runs')
    assert 'lpd__stage2__seed1               configs/stage2_synth_cpu.py' in out
    assert '[stage 2 of lpd__seed1]' in out
    assert main(['run', '--all', '--seeds', '0', '1', '--dry-run', '--no-stage2']) == 0
    without = capsys.readouterr().out
    assert without.strip().endswith(f'{len(build_plan(all_runs=True, seeds=[0, 1]))} runs')
    assert 'stage2' not in without
    for spec in registered_methods():
        assert f'{spec.name}__seed1' in out
    assert 'lpd__k5__seed1' in out and 'model.decode_head.prototypes.num_per_class=5' in out


def test_check_group_is_planned_by_name(tmp_path, capsys):
    assert main(['run', 'power', '--seeds', '0', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith('4 runs')
    assert 'lpd__quarter__seed0' in out and 'schedule_fraction=0.25' in out
    assert 'lpd__eighth__seed0' in out and 'schedule_fraction=0.125' in out
    assert 'lpd__frozenproto__seed0' in out and 'prototypes.frozen=True' in out
    assert main(['list', 'power', '--seeds', '0', '--work-dir', str(tmp_path)]) == 0
    assert '4 todo (of 4)' in capsys.readouterr().out
    assert main(['run', '--all', '--dry-run']) == 0
    assert 'quarter' not in capsys.readouterr().out


def test_list_shows_status_of_each_run(tmp_path, capsys):
    runs = tmp_path / 'runs'
    (runs / 'lpd__k3__seed0').mkdir(parents=True)
    (runs / 'lpd__k3__seed0' / 'iter_50.pth').write_text('x')
    write_json_atomic(runs / 'lpd__k1__seed0' / 'failed.json', {'error': 'boom'})
    assert main(['list', 'num_per_class', '--seeds', '0', '--work-dir', str(tmp_path),
                 '--cfg-options', 'train_cfg.max_iters=20']) == 0
    lines = {line.split()[1]: line.split()[0] for line in capsys.readouterr().out.splitlines()
             if line.split() and line.split()[0] in ('done', 'partial', 'failed', 'todo')}
    assert lines == {'lpd__k1__seed0': 'failed', 'lpd__k3__seed0': 'partial',
                     'lpd__k5__seed0': 'todo', 'lpd__seed0': 'todo'}


@pytest.mark.parametrize('argv, message', [
    (['run', 'nope', '--dry-run'], "unknown method, ablation or check group 'nope'"),
    (['run', 'lpd', '--dry-run', '--cfg-options', 'max_iters'], 'expected KEY=VALUE'),
    (['run', 'lpd', '--dry-run', '--data', '/nonexistent/x'], 'not a directory'),
])
def test_bad_arguments_exit_with_a_message(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)
