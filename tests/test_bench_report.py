"""perf.csv merging and perf.md rendering of the benchmark harness."""
import pytest

from lpd_bench.bench.report import (ENV, MEASURE, merge_rows, read_rows, render_markdown, write_csv,
                                    write_report)


def measure_row(case, batch=2, median=1.0, preset='cpu'):
    return dict(record=MEASURE, preset=preset, case=case, batch=batch, input_size=224, device='cpu',
                repeats=3, warmup=1, median_s=median, min_s=median, max_s=median,
                images_per_s=batch / median, peak_mem_mib=1234.0, memory_method='m', threads=2,
                timestamp='t', detail='d')


def test_merge_replaces_only_what_was_measured_again(tmp_path):
    old = [dict(record=ENV, preset='cpu', case='CPU', detail='old'),
           dict(record=ENV, preset='paper', case='CPU', detail='paper env'),
           measure_row('cam_step', median=2.0), measure_row('lpd_step_after', median=5.0),
           measure_row('lpd_step_after', batch=10, preset='paper')]
    path = tmp_path / 'perf.csv'
    write_csv(str(path), old)
    new = [dict(record=ENV, preset='cpu', case='CPU', detail='new'),
           measure_row('lpd_step_after', median=3.0)]
    merged = merge_rows(read_rows(str(path)), new)
    envs = {(r['preset'], r['detail']) for r in merged if r['record'] == ENV}
    assert envs == {('cpu', 'new'), ('paper', 'paper env')}
    lpd = [r for r in merged if r['case'] == 'lpd_step_after' and r['preset'] == 'cpu']
    assert [(r['record'], float(r['median_s'])) for r in lpd] == [(MEASURE, 3.0)]
    assert any(r['case'] == 'cam_step' and float(r['median_s']) == 2.0 for r in merged)
    assert any(r['preset'] == 'paper' and r['record'] == MEASURE for r in merged)


def test_read_rows_rejects_foreign_csv(tmp_path):
    path = tmp_path / 'perf.csv'
    path.write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match='perf.csv.*missing columns'):
        read_rows(str(path))


def test_markdown_has_environment_and_measurements_and_no_targets():
    rows = [dict(record=ENV, preset='cpu', case='CPU', detail='AMD EPYC'),
            measure_row('cam_step', median=2.0), measure_row('backbone', batch=4, median=0.5)]
    text = render_markdown(rows, {'cam_step': 'CAM training step'})
    assert '| CPU | AMD EPYC |' in text
    assert '### batch 2, input 224x224' in text and '### batch 4, input 224x224' in text
    assert '| cam_step | CAM training step | 2 | 2 | 2 | 1 | 1234 | 3 |' in text
    assert 'target' not in text.lower() and 'PASS' not in text


def test_profile_records_of_older_versions_are_dropped_on_read(tmp_path):
    path = tmp_path / 'perf.csv'
    write_csv(str(path), [measure_row('cam_step'), dict(record='profile', preset='cpu',
                                                        case='cam_step', detail='op aten::mm')])
    assert [r['record'] for r in read_rows(str(path))] == [MEASURE]


def test_report_shows_other_machines_reports_from_subfolders(tmp_path):
    here = [dict(record=ENV, preset='paper', case='CPU', detail='small box'),
            measure_row('backbone', batch=2, median=1.0, preset='paper')]
    big = tmp_path / 'big_host'
    write_csv(str(big / 'perf.csv'), [
        dict(record=ENV, preset='paper', case='CPU', detail='big box'),
        dict(record=ENV, preset='paper', case='cores (os.cpu_count)', detail='16'),
        measure_row('lpd_step_after', batch=10, median=20.0, preset='paper'),
        measure_row('gone', batch=10, median=50.0, preset='paper')])
    write_report(str(tmp_path), here, {'lpd_step_after': 'LPD step'},
                 keep=lambda rows: [r for r in rows if r['case'] != 'gone'])
    assert read_rows(str(tmp_path / 'perf.csv'))[1]['case'] == 'backbone'
    text = (tmp_path / 'perf.md').read_text()
    mine, other = text.split('## Measured on other machines')
    assert 'small box' in mine and 'big box' not in mine
    assert '### [big_host/perf.md](big_host/perf.md)' in other
    assert 'CPU: big box, cores (os.cpu_count): 16' in other
    assert '##### batch 10, input 224x224' in other and '| lpd_step_after | LPD step | 20 |' in other
    assert 'gone' not in other


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
    text = render_markdown(merged, {})
    b2, b10 = text.split('### batch 2, input 224x224')[1].split('### batch 10, input 224x224')
    assert '| command | b2 cmd |' in b2 and 'b10 cmd' not in b2
    assert '| command | b10 cmd |' in b10
