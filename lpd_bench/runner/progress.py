"""Live progress of ``lpd-bench run``: which runs (i/N), their iterations and estimated time left.

Progress comes from MMEngine's log lines (``Iter(train) [ 50/300]``) in the subprocess output.
A plan-level :class:`Progress` is shared by the runs (possibly running concurrently, one thread
each); each run reports through its own :class:`RunProgress` view so that lines name their run.
On a TTY one status line is rewritten in place (all running runs, compactly, when there are
several); otherwise (a log file, CI) plain lines are printed.
"""
import re
import sys
import threading
import time

ITER_RE = re.compile(r'Iter\((train|val|test)\)\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]')
SEED_SUFFIX_RE = re.compile(r'__seed(\d+)$')
CLEAR_LINE = '\r\x1b[2K'


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
    """The plan (N runs, ``jobs`` at a time); ``stream`` defaults to stdout. Thread-safe."""

    def __init__(self, total_runs, stream=None, clock=time.monotonic, jobs=1):
        self.total_runs = total_runs
        self.jobs = max(1, jobs)
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.clock = clock
        self.lock = threading.RLock()
        self.run_durations = []  # wall time of the runs executed in this session
        self.running = {}  # index -> RunProgress
        self.started = self.finished = 0

    def start_run(self, index, run_id) -> 'RunProgress':
        """Announces run ``index`` (1-based) and returns the view it reports through."""
        with self.lock:
            view = RunProgress(self, index, run_id)
            self.running[index] = view
            self.started += 1
            view.message('start')
            return view

    def mean_run_duration(self):
        """Mean wall time of a run: finished runs, else running runs' elapsed + estimated left."""
        if self.run_durations:
            return sum(self.run_durations) / len(self.run_durations)
        now = self.clock()
        guesses = [now - v.run_start + v.left for v in self.running.values() if v.left is not None]
        return sum(guesses) / len(guesses) if guesses else None

    def plan_eta(self):
        """Seconds left in the plan: remaining work (the running runs' time left plus the runs
        not started, at the mean run time) over the throughput (``jobs`` runs at a time)."""
        with self.lock:
            mean = self.mean_run_duration()
            if mean is None:
                return None
            now = self.clock()
            lefts = [v.left if v.left is not None else max(mean - (now - v.run_start), 0.0)
                     for v in self.running.values()]
            pending = self.total_runs - self.started
            return max(max(lefts, default=0.0), (sum(lefts) + pending * mean) / self.jobs)

    def end(self, view, status, counted):
        with self.lock:
            elapsed = self.clock() - view.run_start
            self.running.pop(view.index, None)
            self.finished += 1
            if counted:
                self.run_durations.append(elapsed)
            view.message(f'{status} ({format_duration(elapsed)})')

    def show(self, view, detail):
        """Progress of ``view`` changed: a plain line, or the TTY status line redrawn."""
        with self.lock:
            if not self.tty:
                self.write(detail + '\n')
            elif len(self.running) <= 1:
                self.write(CLEAR_LINE + detail)
            else:
                segments = [v.compact() for _, v in sorted(self.running.items())]
                self.write(CLEAR_LINE + ' | '.join(
                    segments + [f'plan {self.finished}/{self.total_runs}, '
                                f'~{format_duration(self.plan_eta())} left']))

    def message(self, text):
        """A line that stays (clears the status line first on a TTY)."""
        self.write((CLEAR_LINE if self.tty else '') + text + '\n')

    def write(self, text):
        with self.lock:
            self.stream.write(text)
            self.stream.flush()


class RunProgress:
    """One run's view of the plan progress: its stage, iteration and time left."""

    def __init__(self, plan, index, run_id):
        self.plan, self.index, self.run_id = plan, index, run_id
        self.stage = ''
        self.run_start = self.stage_start = plan.clock()
        self.first_iter = {}  # mode -> (iteration, time) of its first progress line in the stage
        self.last = None  # (mode, current, total) of the last progress line
        self.left = None  # seconds left in the current loop, when known

    @property
    def prefix(self) -> str:
        return f'[{self.index}/{self.plan.total_runs}] {self.run_id}'

    def message(self, text):
        """A line about this run (``[i/N] run_id: text``)."""
        self.plan.message(f'{self.prefix}: {text}')

    def start_stage(self, stage):
        with self.plan.lock:
            self.stage, self.first_iter, self.last, self.left = stage, {}, None, None
            self.stage_start = self.plan.clock()
        self.message(stage)

    def end_run(self, status, counted=True):
        self.plan.end(self, status, counted)

    def stage_eta(self, mode, current, total):
        """Seconds left in this mode's loop (train/val/test) from its rate since its first line."""
        now = self.plan.clock()
        first = self.first_iter.setdefault(mode, (current, now))
        if current <= first[0]:
            if current < first[0]:  # a new loop of this mode (e.g. a second validation)
                self.first_iter[mode] = (current, now)
            return None
        rate = (now - first[1]) / (current - first[0])
        return rate * (total - current)

    def update(self, line):
        """Feed one output line of the subprocess; shows progress when it is a progress line."""
        parsed = parse_iter(line)
        if parsed is None:
            return
        mode, current, total = parsed
        with self.plan.lock:
            self.last, self.left = parsed, self.stage_eta(mode, current, total)
            text = (f'{self.prefix}: {self.stage} {mode} {current}/{total} '
                    f'({100 * current / max(total, 1):.0f}%), '
                    f'{mode} left {format_duration(self.left)}, '
                    f'plan left ~{format_duration(self.plan.plan_eta())}')
            self.plan.show(self, text)

    def compact(self) -> str:
        """``lpd__k3/s0 train 50%``: this run in the TTY status line of several runs."""
        name = SEED_SUFFIX_RE.sub(r'/s\1', self.run_id)
        if self.last is None:
            return f'{name} {self.stage}'
        mode, current, total = self.last
        loop = self.stage if mode == self.stage else f'{self.stage}:{mode}'
        return f'{name} {loop} {100 * current / max(total, 1):.0f}%'
