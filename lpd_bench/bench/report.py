"""reports/perf.csv (every record, merged across invocations) and reports/perf.md (rendered from it).

CSV records: ``measure`` (one case at one preset/batch/input), ``profile`` (one line of a profile
of a case behind a failed target) and ``env`` (machine and versions of a preset's last run).
A new invocation replaces the records of the (preset, case, batch, input) it measured and the
env records of its presets; everything else is kept, so presets and batches can be run apart.
"""
import csv
import math
import os
import os.path as osp
import tempfile
from typing import Dict, List, Sequence

from .targets import FAIL, TargetResult

COLUMNS = ('record', 'preset', 'case', 'batch', 'input_size', 'device', 'repeats', 'warmup',
           'median_s', 'min_s', 'max_s', 'images_per_s', 'peak_mem_mib', 'memory_method',
           'threads', 'timestamp', 'detail', 'session', 'samples_s')
#: Columns that older perf.csv files (and other machines' reports) may lack; read as ''.
OPTIONAL_COLUMNS = ('session', 'samples_s')
MEASURE, PROFILE, ENV = 'measure', 'profile', 'env'


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
        return [dict({c: '' for c in OPTIONAL_COLUMNS}, **row) for row in reader]


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


def _atomic_write_text(path: str, text: str) -> None:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path), suffix='.tmp')
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; reports are meant to be read
        with os.fdopen(fd, 'w', newline='') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_csv(path: str, rows: Sequence[dict]) -> None:
    import io
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction='raise', lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in COLUMNS})
    _atomic_write_text(path, buf.getvalue())


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


def _target_value(t: TargetResult) -> str:
    unit = ' MiB' if 'memory' in t.name else (' s' if 'wall time' in t.name else 'x')
    if t.limit is None:
        return f'{t.value:.3g}{unit} (no limit)' if t.value is not None else 'n/a'
    limit = f'{t.comparison} {t.limit:.4g}{unit}'
    return f'{t.value:.3g}{unit} {limit}' if t.value is not None else f'n/a ({limit})'


def _env_table(env: Sequence[dict]) -> List[str]:
    if not env:
        return []
    return (['| environment | value |', '| --- | --- |']
            + [f'| {r["case"]} | {r["detail"]} |' for r in env] + [''])


def _target_rows(targets: Sequence[TargetResult]) -> List[str]:
    return ['| target | preset | value vs limit | status | detail |', '| --- | --- | --- | --- | --- |'
            ] + [f'| {t.name} | {t.preset} | {_target_value(t)} | **{t.status}** | {t.detail} |'
                 for t in targets]


#: The environment records that say which machine another report comes from.
MACHINE_ENV = ('CPU', 'cores (os.cpu_count)', 'memory (GiB)', 'torch threads', 'device')


def render_other_machines(others: Sequence[tuple]) -> List[str]:
    """Section for perf reports of other machines kept in subfolders of the report folder.

    ``others``: (subfolder, env rows, measured target results) per subfolder.
    """
    if not others:
        return []
    out = ['## Measured on other machines', '',
           'Targets measured by the same command on other machines (for what this machine cannot '
           'run, e.g. more memory than it has, or CUDA). Each subfolder holds that run\'s own '
           'perf.md / perf.csv.', '']
    for folder, env, targets in others:
        first = {}
        for r in env:  # one value per name (several settings may each have recorded it)
            first.setdefault(r['case'], r['detail'])
        machine = ', '.join(f'{name}: {first[name]}' for name in MACHINE_ENV if name in first)
        out += [f'### [{folder}/perf.md]({folder}/perf.md)', '', machine or 'machine not recorded', '']
        out += (_target_rows(targets) if targets else [
            'No target applies to what it measured (the targets are set on CPU); see its tables.'])
        out += ['']
    return out


def render_markdown(rows: Sequence[dict], targets: Sequence[TargetResult],
                    descriptions: Dict[str, str], others: Sequence[tuple] = ()) -> str:
    """The perf.md text: environment, measurements per preset/setting, targets, the targets of
    other machines' reports (``others``, see :func:`render_other_machines`), profiles."""
    out = ['# Performance: speed and memory', '',
           'Generated by `lpd-bench bench` (lpd_bench/bench/); do not edit by hand. Each figure is '
           'the median over the timed repeats after the warm-up calls (min and max given), measured '
           'in one process with synthetic in-memory batches (no data loading timed). Peak memory: '
           'on CPU the peak RSS (`ru_maxrss`, whole process, imports included) of a fresh '
           'subprocess that builds only that case and runs it twice; on CUDA '
           '`torch.cuda.max_memory_allocated` after a reset. The machine\'s cores are shared with '
           'other work, so timings carry that noise.', '']
    presets = list(dict.fromkeys(r['preset'] for r in rows))
    for preset in presets:
        out += [f'## Preset `{preset}`', '']
        legacy_env = [r for r in rows if r['record'] == ENV and _setting(r) == (preset, '', '')]
        out += _env_table(legacy_env)
        measures = [r for r in rows if r['record'] == MEASURE and r['preset'] == preset]
        settings = sorted({(int(r['batch']), int(r['input_size'])) for r in measures})
        for batch, size in settings:
            env = [r for r in rows
                   if r['record'] == ENV and _setting(r) == (preset, str(batch), str(size))]
            out += [''] * (out[-1] != '') + [f'### batch {batch}, input {size}x{size}', '']
            out += _env_table(env)
            out += ['| case | what | median s | min s | max s | images/s | peak memory MiB | repeats |',
                    '| --- | --- | --- | --- | --- | --- | --- | --- |']
            for r in measures:
                if (int(r['batch']), int(r['input_size'])) != (batch, size):
                    continue
                out.append(f'| {r["case"]} | {descriptions.get(r["case"], r["detail"])} | '
                           f'{_num(r["median_s"], ".4g")} | {_num(r["min_s"], ".4g")} | '
                           f'{_num(r["max_s"], ".4g")} | {_num(r["images_per_s"])} | '
                           f'{_num(r["peak_mem_mib"], ".0f")} | {r["repeats"]} |')
        out.append('')
    out += ['## Targets', ''] + _target_rows(targets) + ['']
    out += render_other_machines(others)
    profiles = [r for r in rows if r['record'] == PROFILE]
    if profiles:
        out += ['', '## Profiles of cases behind failed targets', '',
                'One call each after the warm-up: torch.profiler operators by self CPU time, then '
                'project/mmseg functions by cumulative time (cProfile).', '']
        for key in dict.fromkeys((r['preset'], r['case'], r['batch'], r['input_size']) for r in profiles):
            out += [f'### {key[1]} ({key[0]}, batch {key[2]}, input {key[3]})', '', '```']
            out += [r['detail'] for r in profiles
                    if (r['preset'], r['case'], r['batch'], r['input_size']) == key]
            out += ['```', '']
    failed = [t for t in targets if t.status == FAIL]
    out += ['', f'{len(failed)} target(s) failed.' if failed else 'No target failed.', '']
    return '\n'.join(out)


def write_markdown(path: str, text: str) -> None:
    _atomic_write_text(path, text)
