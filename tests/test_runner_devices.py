"""Runs placed on GPUs (lpd-bench run --gpus): slots per device, packing by memory, the device a
run's stages see; with fake tools (no GPU needed)."""
import io

import pytest

from helpers import make_tools

from lpd_bench.runner.devices import DeviceSlots, parse_gpus
from lpd_bench.runner.execute import Executor
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.progress import Progress


@pytest.fixture(autouse=True)
def no_submorphology(monkeypatch):
    from lpd_bench.analysis import specialisation
    monkeypatch.setattr(specialisation, 'has_submorphology', lambda *args, **kwargs: False)


def test_slots_pack_runs_while_their_memory_fits():
    slots = DeviceSlots(['0', '1'], jobs=2, capacity_gb={'0': 40, '1': 40})
    assert slots.slots == 4
    assert slots.place('big', 30) == '0'
    assert slots.place('big2', 30) == '1'  # the emptier device
    assert slots.place('small', 8) == '0'  # 38 of 40 on device 0 (tie on memory: fewer runs)
    assert slots.place('medium', 15) is False  # fits on neither (45 > 40), though a slot is free
    assert slots.place('tiny', 2) == '1'
    assert not slots.has_free_slot() and slots.place('any', None) is False
    slots.release('big')
    assert slots.place('medium', 15) == '0'  # 8 + 15 on device 0


def test_unknown_memory_needs_a_slot_only_and_an_oversized_run_goes_to_an_idle_device():
    slots = DeviceSlots(['0'], jobs=3, capacity_gb={'0': 10})
    assert slots.place('unknown', None) == '0' and slots.place('unknown2', None) == '0'
    slots = DeviceSlots(['0'], jobs=2, capacity_gb={'0': 10})
    assert slots.place('huge', 50) == '0'  # alone on an idle device rather than never
    assert slots.place('next', 1) is False
    assert DeviceSlots([None], jobs=2).place('cpu', 99) is None  # no devices: just slots


def test_gpus_option_parsing():
    assert parse_gpus('0,1, 3') == ['0', '1', '3']
    for bad in ('', 'a', '0,0', '1,-1'):
        with pytest.raises(ValueError, match='--gpus'):
            parse_gpus(bad)


def test_runs_see_only_their_gpu_and_jobs_count_per_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_SLEEP', '0.3')
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    memory = {'cam__seed0': 20, 'lpd__seed0': 30, 'lpd__k1__seed0': 30}
    plan = [run for run in build_plan(['cam', 'lpd', 'num_per_class'], seeds=[0])
            if run.run_id in memory]
    executor = Executor(tmp_path / 'w', Progress(len(plan), stream=io.StringIO()),
                        make_tools(tmp_path), jobs=2, gpus=['0', '1'],
                        gpu_memory_gb={'0': 40, '1': 40},
                        run_memory_gb=lambda spec: memory.get(spec.run_id))
    assert set(executor.run_plan(plan).values()) == {'done'}
    devices = {run: (tmp_path / 'w' / 'runs' / run / 'device.txt').read_text() for run in memory}
    assert devices['cam__seed0'] == '0' and devices['lpd__seed0'] == '1'
    assert devices['lpd__k1__seed0'] in ('0', '1')
    # 2 jobs per GPU x 2 GPUs: 4 at a time, each stage with cores // 4 threads (at least 1)
    assert executor.jobs == 2 and executor.threads >= 1
    intervals = {run: tuple(map(float, (tmp_path / 'w' / 'runs' / run / 'interval.txt')
                                .read_text().split())) for run in memory}
    # 30 GiB beside 20 or 30 on a 40 GiB GPU does not fit: lpd k1 waited for one to end
    start = intervals['lpd__k1__seed0'][0]
    assert start >= min(intervals['cam__seed0'][1], intervals['lpd__seed0'][1])


def test_run_command_places_runs_on_the_named_gpus(tmp_path, monkeypatch, capsys):
    import lpd_bench.runner.execute as execute
    from lpd_bench.cli import main
    tools = make_tools(tmp_path)
    monkeypatch.setattr(execute, 'Tools', lambda: tools)
    assert main(['run', 'cam', '--no-stage2', '--work-dir', str(tmp_path / 'w'), '--gpus', '3',
                 '--jobs', '2', '--gpu-memory', '24']) == 0
    out = capsys.readouterr().out
    assert '1 runs on GPUs 3, 2 per GPU' in out
    assert (tmp_path / 'w' / 'runs' / 'cam__seed0' / 'device.txt').read_text() == '3'
    with pytest.raises(SystemExit):
        main(['run', 'cam', '--gpus', 'x'])


def test_run_memory_comes_from_the_stored_bench_figures():
    import argparse
    from pathlib import Path

    from lpd_bench.runner.commands import _run_memory
    csv = Path(__file__).resolve().parents[1] / 'reports' / 'perf_cuda_h100' / 'perf.csv'
    plan = build_plan(['lpd'], seeds=[0], preset='paper')
    args = argparse.Namespace(bench_csv=str(csv), preset='paper', gpus=['0'])
    peak = _run_memory(plan, args)(plan[0])
    assert 1 < peak < 80  # GiB of the LPD paper step measured on an H100
    assert _run_memory(plan, argparse.Namespace(bench_csv=None)) is None
    with pytest.raises(SystemExit, match='no such file'):
        _run_memory(plan, argparse.Namespace(bench_csv='missing.csv', preset='paper'))
