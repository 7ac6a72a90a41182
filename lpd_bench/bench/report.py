"""reports/perf.csv (every record, merged across invocations) and reports/perf.md (rendered from it).

CSV records: ``measure`` (one case at one preset/batch/input) and ``env`` (machine and versions of
the run that measured a preset/batch/input). A new invocation replaces the records of the
(preset, case, batch, input) it measured and the env records of its settings; everything else is
kept, so presets and batches can be run apart. The report only tabulates what was measured: the
development targets that check these numbers are in tests/perf/ (``python
tests/perf/check_targets.py``).
"""
import csv
import glob
import io
import math
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

from ..engine.atomic_json import write_text_atomic

COLUMNS = ('record', 'preset', 'case', 'batch', 'input_size', 'device', 'repeats', 'warmup',
           'median_s', 'min_s', 'max_s', 'images_per_s', 'peak_mem_mib', 'memory_method',
           'threads', 'timestamp', 'detail', 'session', 'samples_s')
#: Columns that older perf.csv files (and other machines' reports) may lack; read as ''.
OPTIONAL_COLUMNS = ('session', 'samples_s')
MEASURE, ENV = 'measure', 'env'
#: Record types of a perf.csv; others (e.g. ``profile`` lines of older versions) are dropped on read.
RECORDS = (MEASURE, ENV)


def read_rows(path: str) -> List[dict]:
    if not osp.isfile(path):
        return []
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return []
        missing = set(COLUMNS) - set(reader.fieldnames) - set(OPTIONAL_COLUMNS)
        if missing:
            raise ValueError(f'{path}: not a perf CSV of this version (missing columns {sorted(missing)})')
        return [dict({c: '' for c in OPTIONAL_COLUMNS}, **row) for row in reader
                if row['record'] in RECORDS]


def _setting(row: dict) -> tuple:
    return (row['preset'], str(row.get('batch') or ''), str(row.get('input_size') or ''))


def _key(row: dict) -> tuple:
    if row['record'] == ENV:  # one environment per (preset, batch, input) measured
        return (ENV, *_setting(row), row['case'])
    return (row['preset'], row['case'], str(row['batch']), str(row['input_size']))


def merge_rows(old: Sequence[dict], new: Sequence[dict]) -> List[dict]:
    """``old`` minus the records that ``new`` supersedes, then ``new``.

    New environment records replace those of their (preset, batch, input), and the environment
    records without a batch (written by older versions) of their preset.
    """
    replaced = {_key(r) for r in new}
    new_env = {_setting(r) for r in new if r['record'] == ENV}
    stale_env = new_env | {(p, '', '') for p, _, _ in new_env}
    return [r for r in old if _key(r) not in replaced
            and not (r['record'] == ENV and _setting(r) in stale_env)] + [dict(r) for r in new]


def write_csv(path: str, rows: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction='raise', lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in COLUMNS})
    write_text_atomic(path, buf.getvalue())


def _cell(value):
    if value is None:
        return ''
    if isinstance(value, float):
        return f'{value:.6g}'
    return value


def _num(value, fmt: str = '.3g') -> str:
    if value in (None, ''):
        return 'n/a'
    value = float(value)
    return format(value, fmt) if math.isfinite(value) else 'n/a'


def _env_table(env: Sequence[dict]) -> List[str]:
    if not env:
        return []
    return (['| environment | value |', '| --- | --- |']
            + [f'| {r["case"]} | {r["detail"]} |' for r in env] + [''])


#: The environment records that say which machine another report comes from.
MACHINE_ENV = ('CPU', 'cores (os.cpu_count)', 'memory (GiB)', 'torch threads', 'device')


def _setting_sort_key(row: dict) -> tuple:
    return (int(row['batch']), int(row['input_size']))


def render_preset(rows: Sequence[dict], preset: str, descriptions: Dict[str, str],
                  level: int = 2) -> List[str]:
    """The section of ``preset``: per (batch, input) setting, its environment and one line per
    measured case (heading ``level`` for the preset, ``level + 1`` for the settings)."""
    out = ['#' * level + f' Preset `{preset}`', '']
    legacy_env = [r for r in rows if r['record'] == ENV and _setting(r) == (preset, '', '')]
    out += _env_table(legacy_env)
    measures = [r for r in rows if r['record'] == MEASURE and r['preset'] == preset]
    for batch, size in sorted({_setting_sort_key(r) for r in measures}):
        env = [r for r in rows
               if r['record'] == ENV and _setting(r) == (preset, str(batch), str(size))]
        out += [''] * (out[-1] != '') + ['#' * (level + 1) + f' batch {batch}, input {size}x{size}', '']
        out += _env_table(env)
        out += ['| case | what | median s | min s | max s | images/s | peak memory MiB | repeats |',
                '| --- | --- | --- | --- | --- | --- | --- | --- |']
        for r in measures:
            if _setting_sort_key(r) != (batch, size):
                continue
            out.append(f'| {r["case"]} | {descriptions.get(r["case"], r["detail"])} | '
                       f'{_num(r["median_s"], ".4g")} | {_num(r["min_s"], ".4g")} | '
                       f'{_num(r["max_s"], ".4g")} | {_num(r["images_per_s"])} | '
                       f'{_num(r["peak_mem_mib"], ".0f")} | {r["repeats"]} |')
    out.append('')
    return out


def machine_line(rows: Sequence[dict]) -> str:
    """The machine a report's environment records name (one value per name), on one line."""
    first = {}
    for r in rows:
        if r['record'] == ENV:  # several settings may each have recorded it
            first.setdefault(r['case'], r['detail'])
    return ', '.join(f'{name}: {first[name]}' for name in MACHINE_ENV if name in first)


def render_other_machines(others: Sequence[tuple], descriptions: Dict[str, str]) -> List[str]:
    """Section for perf reports of other machines kept in subfolders of the report folder.

    ``others``: (subfolder, rows of its perf.csv) per subfolder.
    """
    if not others:
        return []
    out = ['## Measured on other machines', '',
           'The same harness run on other machines (for what this machine cannot run, e.g. more '
           'memory than it has, or CUDA). Each subfolder holds that run\'s own perf.md / perf.csv.',
           '']
    for folder, rows in others:
        out += [f'### [{folder}/perf.md]({folder}/perf.md)', '',
                machine_line(rows) or 'machine not recorded', '']
        for preset in dict.fromkeys(r['preset'] for r in rows if r['record'] == MEASURE):
            out += render_preset([r for r in rows if r['record'] == MEASURE], preset,
                                 descriptions, level=4)
    return out


def render_markdown(rows: Sequence[dict], descriptions: Dict[str, str],
                    others: Sequence[tuple] = ()) -> str:
    """The perf.md text: per preset and setting its environment and measurements, then the
    reports of other machines (``others``, see :func:`render_other_machines`)."""
    out = ['# Performance: speed and memory', '',
           'Generated by `lpd-bench bench` (lpd_bench/bench/); do not edit by hand. Each figure is '
           'the median over the timed repeats after the warm-up calls (min and max given), measured '
           'in one process with synthetic in-memory batches (no data loading timed). Peak memory: '
           'on CPU the peak RSS (`ru_maxrss`, whole process, imports included) of a fresh '
           'subprocess that builds only that case and runs it twice; on CUDA '
           '`torch.cuda.max_memory_allocated` after a reset. The machine\'s cores are shared with '
           'other work, so timings carry that noise.', '']
    for preset in dict.fromkeys(r['preset'] for r in rows):
        out += render_preset(rows, preset, descriptions)
    out += render_other_machines(others, descriptions)
    return '\n'.join(out).rstrip('\n') + '\n'


def other_machine_reports(out_dir: str, keep: Optional[Callable] = None) -> List[tuple]:
    """(subfolder, rows) of each ``out_dir/<subfolder>/perf.csv``: reports of the same harness
    run on other machines, shown in the main perf.md. ``keep(rows) -> rows`` filters them (e.g.
    drops cases no preset defines any more)."""
    others = []
    for path in sorted(glob.glob(osp.join(out_dir, '*', 'perf.csv'))):
        rows = read_rows(path)
        others.append((osp.basename(osp.dirname(path)), keep(rows) if keep else rows))
    return others


def write_report(out_dir: str, rows: Sequence[dict], descriptions: Dict[str, str],
                 keep: Optional[Callable] = None) -> None:
    """``out_dir``/perf.csv (``rows``) and perf.md (``rows`` and the reports of other machines
    found in its subfolders, filtered by ``keep``; ``descriptions``: case name -> what it is)."""
    write_csv(osp.join(out_dir, 'perf.csv'), rows)
    write_text_atomic(osp.join(out_dir, 'perf.md'), render_markdown(
        rows, descriptions, other_machine_reports(out_dir, keep)))
