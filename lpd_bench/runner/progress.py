"""Live progress of ``lpd-bench run``: which run (i/N), its iteration and estimated time left.

Progress comes from MMEngine's log lines (``Iter(train) [ 50/300]``) in the subprocess output.
On a TTY one status line is rewritten in place; otherwise (a log file, CI) plain lines are printed.
"""
import re
import sys
import time

ITER_RE = re.compile(r'Iter\((train|val|test)\)\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]')


def parse_iter(line):
    """(mode, current, total) of an MMEngine progress line, or None."""
    match = ITER_RE.search(line)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3))


def format_duration(seconds) -> str:
    if seconds is None:
        return '?'
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{secs:02d}s'


class Progress:
    """Tracks the plan (N runs) and the running stage; ``stream`` defaults to stdout."""

    def __init__(self, total_runs, stream=None, clock=time.monotonic):
        self.total_runs = total_runs
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.clock = clock
        self.run_durations = []  # wall time of the runs executed in this session
        self.index = 0
        self.run_id = ''
        self.stage = ''
        self.run_start = self.stage_start = clock()
        self.first_iter = {}  # mode -> (iteration, time) of its first progress line in the stage

    def start_run(self, index, run_id):
        self.index, self.run_id = index, run_id
        self.run_start = self.clock()
        self.message(f'[{index}/{self.total_runs}] {run_id}: start')

    def start_stage(self, stage):
        self.stage, self.first_iter = stage, {}
        self.stage_start = self.clock()
        self.message(f'[{self.index}/{self.total_runs}] {self.run_id}: {stage}')

    def end_run(self, status, counted=True):
        elapsed = self.clock() - self.run_start
        if counted:
            self.run_durations.append(elapsed)
        self.message(f'[{self.index}/{self.total_runs}] {self.run_id}: {status} '
                     f'({format_duration(elapsed)})')

    def stage_eta(self, mode, current, total):
        """Seconds left in this mode's loop (train/val/test) from its rate since its first line."""
        now = self.clock()
        first = self.first_iter.setdefault(mode, (current, now))
        if current <= first[0]:
            if current < first[0]:  # a new loop of this mode (e.g. a second validation)
                self.first_iter[mode] = (current, now)
            return None
        rate = (now - first[1]) / (current - first[0])
        return rate * (total - current)

    def plan_eta(self, run_left):
        """Seconds left in the plan: this run plus the remaining runs at the mean run time."""
        if run_left is None:
            return None
        durations = self.run_durations or [self.clock() - self.run_start + run_left]
        return run_left + (self.total_runs - self.index) * sum(durations) / len(durations)

    def update(self, line):
        """Feed one output line of the subprocess; shows progress when it is a progress line."""
        parsed = parse_iter(line)
        if parsed is None:
            return
        mode, current, total = parsed
        eta = self.stage_eta(mode, current, total)
        text = (f'[{self.index}/{self.total_runs}] {self.run_id}: {self.stage} {mode} '
                f'{current}/{total} ({100 * current / max(total, 1):.0f}%), '
                f'{mode} left {format_duration(eta)}, '
                f'plan left ~{format_duration(self.plan_eta(eta))}')
        self.status(text)

    def status(self, text):
        if self.tty:
            self.stream.write('\r\x1b[2K' + text)
        else:
            self.stream.write(text + '\n')
        self.stream.flush()

    def message(self, text):
        """A line that stays (clears the status line first on a TTY)."""
        self.stream.write(('\r\x1b[2K' if self.tty else '') + text + '\n')
        self.stream.flush()
