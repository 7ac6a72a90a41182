"""`lpd-bench list --estimate`: a plan's cost from bench figures (lpd_bench/runner/estimate.py)."""
import pytest

from lpd_bench.bench.report import ENV, MEASURE, write_csv
from lpd_bench.cli import main
from lpd_bench.data import synthetic
from lpd_bench.runner import estimate as E
from lpd_bench.runner.plan import build_plan

#: Fabricated CPU-preset figures at the CPU configs' batch 8 and input 112: (seconds per call,
#: peak MiB). Inference cases: one call is a batch of 8 images.
FIGURES = {'backbone': (0.03, 400.0), 'lpd_step_before': (0.04, 500.0),
           'lpd_step_after': (0.05, 520.0), 'infer_single': (0.04, 450.0),
           'infer_tta': (0.12, 510.0)}


def write_bench_csv(path, figures=FIGURES, device='cpu', preset='cpu', batch=8, size=112):
    rows = [dict(record=ENV, preset=preset, case=name, batch=batch, input_size=size, detail=value)
            for name, value in (('device', device), ('CPU', 'Test CPU'),
                                ('measured at (UTC)', '2026-11-28 04:00'))]
    rows += [dict(record=MEASURE, preset=preset, case=case, batch=batch, input_size=size,
                  device=device, repeats=3, warmup=1, median_s=seconds, min_s=seconds,
                  max_s=seconds, images_per_s=batch / seconds, peak_mem_mib=peak,
                  memory_method='ru_maxrss of a fresh subprocess', threads=2)
             for case, (seconds, peak) in figures.items()]
    write_csv(str(path), rows)
    return str(path)


@pytest.fixture
def figures(tmp_path):
    return E.load_figures(write_bench_csv(tmp_path / 'perf.csv'), 'cpu', 'cpu')


def by_id(estimates):
    return {e.run_id: e for e in estimates}


def test_estimate_of_a_known_plan_equals_the_hand_computed_numbers(figures):
    plan = build_plan(['lpd', 'cam'], seeds=[0], preset='cpu', stage2=True)
    runs = by_id(E.estimate_plan(plan, figures))
    # configs/lpd_synth_cpu.py: 600 iterations at batch 8, input 112, loss warm-up 200, one
    # validation (at the end), left out by the runner (no best-on-val checkpoint before
    # 200 + 600), one test, TTA flip x 3 intensities = 6 views (infer_tta's), the default
    # synthetic set's images.
    val, test, train = (synthetic.DEFAULT_SPLIT_SIZES[s] for s in ('val', 'test', 'train'))
    per_image = 0.12 / 8  # infer_tta: a batch of 8 at 6 views
    lpd = runs['lpd__seed0']
    assert lpd.part('train').seconds == pytest.approx(200 * 0.04 + 400 * 0.05)  # 28 s
    assert lpd.part('train').basis == 'lpd_step_before x200 + lpd_step_after x400'
    assert lpd.part('val').seconds == 0.0
    assert lpd.part('test').seconds == pytest.approx(1 * test * per_image)
    assert lpd.seconds == pytest.approx(28 + test * per_image)
    # a schedule whose last validation can save the best checkpoint keeps it: 1200 iterations,
    # validating every 600 (best from 200 + 600 on): both validations, two tests
    longer = by_id(E.estimate_plan(build_plan(['lpd'], seeds=[0], preset='cpu', extra_options={
        'train_cfg.max_iters': '1200'}), figures))['lpd__seed0']
    assert longer.part('val').seconds == pytest.approx(2 * val * per_image)
    assert longer.part('test').seconds == pytest.approx(2 * test * per_image)
    assert lpd.mark == E.EXACT and lpd.peak_mib == 520
    # CAM has no case of its own here: its backbone is the bare-backbone case's, a lower bound
    # of its training; its validation and test have no figure (no inference case of CAM).
    cam = runs['cam__seed0']
    assert cam.part('train').seconds == pytest.approx(600 * 0.03)
    assert cam.part('train').mark == E.FLOOR and 'lower bound' in cam.part('train').basis
    assert cam.part('val').seconds == 0.0 and cam.part('test').seconds is None
    assert cam.missing == ['test'] and cam.mark == E.FLOOR
    # Stage 2: pseudo-masks of train + val through LPD's inference (6 views), the stage-2
    # network's training at its bare-backbone floor (the same tiny MiT), no figure for its tests.
    stage2 = runs['lpd__stage2__seed0']
    assert stage2.part('pseudo-masks').seconds == pytest.approx((train + val) * per_image)
    assert stage2.part('train').seconds == pytest.approx(600 * 0.03)
    assert stage2.part('val').seconds is None and stage2.part('test').seconds is None
    # --jobs 2: lpd on one slot, cam on the other, lpd's stage 2 after lpd.
    ordered = E.estimate_plan(plan, figures)
    assert [e.run_id for e in ordered] == [r.run_id for r in plan]
    assert E.pack(ordered, 2) == pytest.approx(lpd.seconds + stage2.seconds)
    assert E.pack(ordered, 1) == pytest.approx(sum(e.seconds for e in ordered))


def test_a_run_with_other_options_is_marked_approximate(figures):
    plan = build_plan(['num_per_class'], seeds=[0], preset='cpu')
    runs = by_id(E.estimate_plan(plan, figures))
    k3 = runs['lpd__k3__seed0'].part('train')
    assert k3.mark == E.APPROX and 'not k3' in k3.basis
    assert k3.seconds == pytest.approx(28.0)
    assert runs['lpd__seed0'].part('train').mark == E.EXACT


def test_a_run_without_a_matching_case_is_reported_as_such(tmp_path, capsys):
    no_backbone = {k: v for k, v in FIGURES.items() if k != 'backbone'}
    csv = write_bench_csv(tmp_path / 'perf.csv', no_backbone)
    assert main(['list', 'lpd', 'cam', '--no-stage2', '--bench-csv', csv, '--jobs', '2',
                 '--work-dir', str(tmp_path / 'w')]) == 0
    out = capsys.readouterr().out
    assert f'estimate from {csv}: preset cpu, device cpu (Test CPU)' in out
    rows = {line.split()[0]: line for line in out.splitlines()
            if line.startswith(('lpd__', 'cam__'))}
    assert '28.0 s' in rows['lpd__seed0'] and '520' in rows['lpd__seed0']
    assert rows['cam__seed0'].split()[1:4] == ['-', 'no', 'figure']  # pseudo-masks, train
    assert 'no training case of its own' in rows['cam__seed0']
    assert 'no figure for train of 1 runs (left out): cam__seed0' in out
    assert 'no figure for test of 1 runs (left out): cam__seed0' in out
    assert 'no figure for val' not in out  # its one validation is left out by the runner
    assert 'total, one run at a time: >=' in out and 'CPU-hours' in out
    assert 'with --jobs 2:' in out


def test_missing_bench_csv_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match='no such file'):
        main(['list', 'lpd', '--estimate', '--bench-csv', str(tmp_path / 'nope.csv'),
              '--work-dir', str(tmp_path)])


def test_without_figures_for_this_device_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(E, 'current_device', lambda: 'cpu')
    monkeypatch.setattr(E, 'DEFAULT_BENCH_CSV', str(tmp_path / 'absent.csv'))
    assert main(['list', 'lpd', '--estimate', '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'no estimate: no bench figures for preset cpu on this device (cpu)' in out
    assert '`lpd-bench bench --preset cpu`' in out
    # A default CSV with only GPU figures gives none for this CPU (a stored CSV is another matter).
    gpu_only = write_bench_csv(tmp_path / 'gpu.csv', device='cuda')
    monkeypatch.setattr(E, 'DEFAULT_BENCH_CSV', gpu_only)
    assert main(['list', 'lpd', '--estimate', '--work-dir', str(tmp_path)]) == 0
    assert 'no bench figures for preset cpu on this device (cpu)' in capsys.readouterr().out
    assert E.load_figures(gpu_only, 'cpu', 'cpu').device == 'cuda'


def test_stored_h100_figures_give_the_paper_lpd_run():
    figures = E.load_figures('reports/perf_cuda_h100/perf.csv', 'paper', 'cpu')
    assert figures.device == 'cuda' and 'H100' in figures.device_name
    plan = build_plan(['lpd'], seeds=[0], preset='paper')
    (lpd, ) = E.estimate_plan(plan, figures)
    steps = {c: f[0].seconds for c, f in figures.figures.items()}
    # configs/lpd_bcss.py: 18,744 iterations at batch 10, input 224, loss warm-up 3,000.
    assert lpd.part('train').seconds == pytest.approx(
        3000 * steps['lpd_step_before'] + 15744 * steps['lpd_step_after'])
    assert lpd.part('train').mark == E.EXACT
    assert lpd.part('val').seconds is None  # the paper preset has no inference case


def test_one_phase_case_stands_in_for_the_other_marked_approximate(tmp_path):
    only_after = {k: v for k, v in FIGURES.items() if k != 'lpd_step_before'}
    figures = E.load_figures(write_bench_csv(tmp_path / 'perf.csv', only_after), 'cpu', 'cpu')
    (lpd, ) = E.estimate_plan(build_plan(['lpd'], seeds=[0], preset='cpu'), figures)
    train = lpd.part('train')
    assert train.seconds == pytest.approx(600 * 0.05) and train.mark == E.APPROX
    assert 'other warm-up phase' in train.basis


def test_speed_variants_run_on_request_are_not_taken_for_the_configs_step(tmp_path):
    """An AMP/fused-attention case (run only when named) in the CSV, even a faster one, does not
    stand for the paper config's training step."""
    figures = {'lpd_step_before': (0.4, 9000.0), 'lpd_step_after_amp_fp16': (0.1, 4000.0),
               'lpd_step_after_amp_bf16_sdpa_cl': (0.1, 4000.0)}
    loaded = E.load_figures(write_bench_csv(tmp_path / 'perf.csv', figures, device='cuda',
                                            preset='paper', batch=10, size=224), 'paper', 'cuda')
    lpd = by_id(E.estimate_plan(build_plan(['lpd'], seeds=[0], preset='paper'), loaded))
    train = lpd['lpd__seed0'].part('train')
    assert 'amp' not in train.basis and train.peak_mib == 9000.0
