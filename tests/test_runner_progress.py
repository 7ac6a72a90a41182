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
    progress.start_run(1, 'lpd__seed0')
    progress.start_stage('train')
    progress.update('Iter(train) [ 10/100]')
    clock.now = 90.0
    progress.update('Iter(train) [ 40/100]')  # 3 s/iter -> 180 s left in the stage
    last = out.getvalue().splitlines()[-1]
    assert last.startswith('[1/3] lpd__seed0: train train 40/100 (40%)')
    # plan: 180 s of this run + 2 more runs of (90 + 180) s each
    assert 'train left 3m00s' in last and 'plan left ~12m00s' in last
    assert '\r' not in out.getvalue()
    progress.update('Iter(val) [ 1/4]')  # validation has its own rate
    clock.now = 100.0
    progress.update('Iter(val) [ 2/4]')
    assert 'val 2/4 (50%), val left 0m20s' in out.getvalue().splitlines()[-1]


def test_tty_rewrites_one_status_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    progress = Progress(1, stream=out, clock=Clock())
    progress.update('Iter(train) [ 1/2]')
    assert out.getvalue().startswith('\r\x1b[2K') and not out.getvalue().endswith('\n')


def test_format_duration():
    assert format_duration(None) == '?'
    assert format_duration(59.6) == '1m00s'
    assert format_duration(3 * 3600 + 61) == '3h01m'
