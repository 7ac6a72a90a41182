"""perf.csv merging and perf.md rendering of the benchmark harness."""
import pytest

from lpd_bench.bench.report import (ENV, MEASURE, PROFILE, merge_rows, read_rows, render_markdown,
                                    write_csv)
from lpd_bench.bench.targets import FAIL, PASS, TargetResult


def measure_row(case, batch=2, median=1.0, preset='cpu'):
    return dict(record=MEASURE, preset=preset, case=case, batch=batch, input_size=224, device='cpu',
                repeats=3, warmup=1, median_s=median, min_s=median, max_s=median,
                images_per_s=batch / median, peak_mem_mib=1234.0, memory_method='m', threads=2,
                timestamp='t', detail='d')


def test_merge_replaces_only_what_was_measured_again(tmp_path):
    old = [dict(record=ENV, preset='cpu', case='CPU', detail='old'),
           dict(record=ENV, preset='paper', case='CPU', detail='paper env'),
           measure_row('cam_step', median=2.0), measure_row('lpd_step_after', median=5.0),
           dict(record=PROFILE, preset='cpu', case='lpd_step_after', batch=2, input_size=224,
                detail='op aten::mm'),
           measure_row('lpd_step_after', batch=10, preset='paper')]
    path = tmp_path / 'perf.csv'
    write_csv(str(path), old)
    new = [dict(record=ENV, preset='cpu', case='CPU', detail='new'),
           measure_row('lpd_step_after', median=3.0)]
    merged = merge_rows(read_rows(str(path)), new)
    envs = {(r['preset'], r['detail']) for r in merged if r['record'] == ENV}
    assert envs == {('cpu', 'new'), ('paper', 'paper env')}
    lpd = [r for r in merged if r['case'] == 'lpd_step_after' and r['preset'] == 'cpu']
    assert [(r['record'], float(r['median_s'])) for r in lpd] == [(MEASURE, 3.0)]  # profile gone too
    assert any(r['case'] == 'cam_step' and float(r['median_s']) == 2.0 for r in merged)
    assert any(r['preset'] == 'paper' and r['record'] == MEASURE for r in merged)


def test_read_rows_rejects_foreign_csv(tmp_path):
    path = tmp_path / 'perf.csv'
    path.write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match='perf.csv.*missing columns'):
        read_rows(str(path))


def test_markdown_has_environment_measurements_targets_and_profiles():
    rows = [dict(record=ENV, preset='cpu', case='CPU', detail='AMD EPYC'),
            measure_row('cam_step', median=2.0), measure_row('backbone', batch=4, median=0.5),
            dict(record=PROFILE, preset='cpu', case='cam_step', batch=2, input_size=224,
                 detail='op aten::mm: self CPU 1.000 s')]
    targets = [TargetResult('LPD step after warm-up / CAM step', 'cpu', 1.6, 1.5, '<=', FAIL, 'x'),
               TargetResult('peak memory of any run', 'cpu', 100.0, 4096.0, '<', PASS, 'y')]
    text = render_markdown(rows, targets, {'cam_step': 'CAM training step'})
    assert '| CPU | AMD EPYC |' in text
    assert '### batch 2, input 224x224' in text and '### batch 4, input 224x224' in text
    assert '| cam_step | CAM training step | 2 | 2 | 2 | 1 | 1234 | 3 |' in text
    assert '| 1.6x <= 1.5x | **FAIL** |' in text
    assert '100 MiB < 4096 MiB | **PASS**' in text
    assert 'op aten::mm: self CPU 1.000 s' in text and '1 target(s) failed.' in text


def test_rerender_shows_other_machines_reports_from_subfolders(tmp_path):
    from lpd_bench.bench.harness import rerender
    from lpd_bench.bench.targets import NOT_MEASURED
    here = [dict(record=ENV, preset='paper', case='CPU', detail='small box'),
            measure_row('backbone', batch=2, median=1.0, preset='paper'),
            measure_row('lpd_step_after', batch=2, median=10.0, preset='paper')]
    write_csv(str(tmp_path / 'perf.csv'), here)
    big = tmp_path / 'big_host'
    big.mkdir()
    write_csv(str(big / 'perf.csv'), [
        dict(record=ENV, preset='paper', case='CPU', detail='big box'),
        dict(record=ENV, preset='paper', case='cores (os.cpu_count)', detail='16'),
        measure_row('lpd_step_after', batch=10, median=20.0, preset='paper'),
        measure_row('lpd_step_after_straightforward', batch=10, median=50.0, preset='paper')])
    targets = rerender(str(tmp_path), runs_dir=str(tmp_path / 'no_runs'), log=lambda *_: None)
    speed = [t for t in targets if t.name.startswith('speed-up')]
    assert [t.status for t in speed] == [NOT_MEASURED]  # this machine's own rows only
    text = (tmp_path / 'perf.md').read_text()
    other = text.split('## Measured on other machines')[1]
    assert '[big_host/perf.md](big_host/perf.md)' in other and 'CPU: big box, cores (os.cpu_count): 16' in other
    assert '| speed-up over the straightforward implementation | paper | 2.5x >= 2x | **PASS** |' in other
    assert 'NOT MEASURED' not in other  # only what that machine measured
    assert 'small box' in text.split('## Measured on other machines')[0]


def test_rerender_without_csv_is_a_clear_error(tmp_path):
    from lpd_bench.bench.harness import rerender
    with pytest.raises(FileNotFoundError, match='no perf.csv to render'):
        rerender(str(tmp_path))


def test_environment_is_kept_and_shown_per_batch():
    old = [dict(record=ENV, preset='paper', case='command', detail='legacy'),
           dict(record=ENV, preset='paper', case='command', batch=2, input_size=224, detail='b2 cmd'),
           measure_row('backbone', batch=2, preset='paper')]
    new = [dict(record=ENV, preset='paper', case='command', batch=10, input_size=224,
                detail='b10 cmd'), measure_row('backbone', batch=10, preset='paper')]
    merged = merge_rows(old, new)
    envs = sorted(r['detail'] for r in merged if r['record'] == ENV)
    assert envs == ['b10 cmd', 'b2 cmd']  # the batch-less legacy record of the preset is gone
    text = render_markdown(merged, [], {})
    b2, b10 = text.split('### batch 2, input 224x224')[1].split('### batch 10, input 224x224')
    assert '| command | b2 cmd |' in b2 and 'b10 cmd' not in b2
    assert '| command | b10 cmd |' in b10
