"""Progress lines parsed from MMEngine logs, ETA, plain vs TTY output."""
import io

from lpd_bench.runner.progress import Progress, format_duration, parse_iter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_parse_mmengine_lines():
    line = '11/26 23:40:01 - mmengine - INFO - Iter(train) [ 50/300]  lr: 5e-05  eta: 0:01:02'
    assert parse_iter(line) == ('train', 50, 300)
    assert parse_iter('Iter(test) [10/50]    eta: 0:00:02') == ('test', 10, 50)
    assert parse_iter('Epoch(train) [1][ 50/300]') is None
    assert parse_iter('loss: 0.3') is None


def test_eta_of_stage_and_plan_in_plain_lines():
    clock, out = Clock(), io.StringIO()
    progress = Progress(3, stream=out, clock=clock)
    run = progress.start_run(1, 'lpd__seed0')
    run.start_stage('train')
    run.update('Iter(train) [ 10/100]')
    clock.now = 90.0
    run.update('Iter(train) [ 40/100]')  # 3 s/iter -> 180 s left in the stage
    last = out.getvalue().splitlines()[-1]
    assert last.startswith('[1/3] lpd__seed0: train train 40/100 (40%)')
    # plan: 180 s of this run + 2 more runs of (90 + 180) s each
    assert 'train left 3m00s' in last and 'plan left ~12m00s' in last
    assert '\r' not in out.getvalue()
    run.update('Iter(val) [ 1/4]')  # validation has its own rate
    clock.now = 100.0
    run.update('Iter(val) [ 2/4]')
    assert 'val 2/4 (50%), val left 0m20s' in out.getvalue().splitlines()[-1]


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_tty_rewrites_one_status_line():
    out = Tty()
    run = Progress(1, stream=out, clock=Clock()).start_run(1, 'lpd__seed0')
    out.seek(0), out.truncate()
    run.update('Iter(train) [ 1/2]')
    assert out.getvalue().startswith('\r\x1b[2K') and not out.getvalue().endswith('\n')


def test_concurrent_runs_name_themselves_and_plan_eta_divides_by_jobs():
    clock, out = Clock(), io.StringIO()
    progress = Progress(4, stream=out, clock=clock, jobs=2)
    a, b = progress.start_run(1, 'lpd__k3__seed0'), progress.start_run(2, 'lpd__k5__seed0')
    a.start_stage('train'), b.start_stage('test')
    a.update('Iter(train) [ 0/100]'), b.update('Iter(test) [ 0/10]')
    clock.now = 50.0
    a.update('Iter(train) [ 50/100]')  # a: 50 s left, run of 100 s
    b.update('Iter(test) [ 5/10]')  # b: 50 s left
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith('[1/4] lpd__k3__seed0: train train 50/100 (50%)')
    assert lines[-1].startswith('[2/4] lpd__k5__seed0: test test 5/10 (50%)')
    # (50 + 50 s of the running runs + 2 runs x 100 s) / 2 jobs = 150 s
    assert 'plan left ~2m30s' in lines[-1]
    a.end_run('done')
    assert out.getvalue().splitlines()[-1] == '[1/4] lpd__k3__seed0: done (0m50s)'


def test_tty_status_line_shows_every_running_run():
    clock, out = Clock(), Tty()
    progress = Progress(13, stream=out, clock=clock, jobs=2)
    a, b = progress.start_run(1, 'lpd__k3__seed0'), progress.start_run(2, 'lpd__k5__seed0')
    a.start_stage('train'), b.start_stage('test')
    a.update('Iter(train) [ 150/300]')
    b.update('Iter(test) [ 1/5]')
    status = out.getvalue().rsplit('\r\x1b[2K', 1)[-1]
    assert status.startswith('lpd__k3/s0 train 50% | lpd__k5/s0 test 20% | plan 0/13, ~')
    assert not status.endswith('\n')


def test_format_duration():
    assert format_duration(None) == '?'
    assert format_duration(59.6) == '1m00s'
    assert format_duration(3 * 3600 + 61) == '3h01m'
