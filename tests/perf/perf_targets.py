"""The speed and memory targets of the performance issue, checked against measured rows.

Development checks, not part of what a user measures (see README.md here): the limits come from
our planning. A measurement row is a dict of ``lpd-bench bench``'s perf.csv with at least
``preset``, ``case``, ``batch``, ``input_size``, ``median_s`` and ``peak_mem_mib`` (None, '' or
NaN when not measured); runner results are the complete ``result.json`` dicts of ``lpd-bench
run`` (``lpd_bench.runner.results.iter_results``: the runner's own validity rule).
"""
import math
import os.path as osp
import statistics
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from lpd_bench.runner.results import PLAN_WALL_FILE, iter_results, read_json

PASS, FAIL, NOT_MEASURED, REPORTED = 'PASS', 'FAIL', 'NOT MEASURED', 'REPORTED'
GIB = 1024.0  # MiB per GiB

#: The straightforward implementation runs ~33x the bare backbone at batch 2 (the issue's
#: measurement); the aim is half. At other batches the straightforward form's ratio is unknown (at
#: batch 10 it needs > 24 GiB), so there the ratio is only reported and the aim is checked directly
#: by the speed-up over the straightforward form.
STRAIGHTFORWARD_BACKBONE_RATIO = 33.0
STRAIGHTFORWARD_BACKBONE_BATCH = 2


@dataclass(frozen=True)
class RatioTarget:
    """``median(numerator) / median(denominator) <op> limit`` at one preset, batch and input size.

    ``batches``: only these batch sizes (None: every measured one). ``limit=None``: the ratio is
    reported (status REPORTED), not checked.
    """
    name: str
    preset: str
    numerator: str
    denominator: str
    limit: Optional[float]
    at_most: bool = True  # False: the ratio must be at least ``limit``
    batches: Optional[Tuple[int, ...]] = None
    exclude_batches: Tuple[int, ...] = ()


RATIO_TARGETS = (
    RatioTarget('LPD step after warm-up / CAM step', 'cpu', 'lpd_step_after', 'cam_step', 1.5),
    RatioTarget('LPD step before warm-up / CAM step', 'cpu', 'lpd_step_before', 'cam_step', 1.1),
    RatioTarget('TTA (6 views) / single-view inference time', 'cpu', 'infer_tta', 'infer_single', 6.5),
    RatioTarget('LPD step after warm-up / bare backbone fwd+bwd', 'paper', 'lpd_step_after', 'backbone',
                STRAIGHTFORWARD_BACKBONE_RATIO / 2, batches=(STRAIGHTFORWARD_BACKBONE_BATCH, )),
    RatioTarget('LPD step after warm-up / bare backbone fwd+bwd', 'paper', 'lpd_step_after', 'backbone',
                None, exclude_batches=(STRAIGHTFORWARD_BACKBONE_BATCH, )),
    RatioTarget('speed-up over the straightforward implementation', 'paper',
                'lpd_step_after_straightforward', 'lpd_step_after', 2.0, at_most=False),
)
CPU_RUN_MEMORY_LIMIT_MIB = 4 * GIB
CPU_RUN_ALL_LIMIT_S = 15 * 60.0
PAPER_MEMORY_LIMIT_MIB = 8 * GIB
PAPER_MEMORY_BATCH = 10


@dataclass(frozen=True)
class TargetResult:
    name: str
    preset: str
    value: Optional[float]
    limit: float
    comparison: str  # '<=', '<' or '>='
    status: str
    detail: str = ''


def _finite(value) -> Optional[float]:
    if value is None or value == '':
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check(value: Optional[float], limit: Optional[float], comparison: str) -> str:
    if value is None:
        return NOT_MEASURED
    if limit is None:
        return REPORTED
    ok = {'<=': value <= limit, '<': value < limit, '>=': value >= limit}[comparison]
    return PASS if ok else FAIL


def _groups(rows: Sequence[dict], preset: str) -> List[tuple]:
    """Distinct (batch, input_size) settings measured at ``preset``, in order."""
    return sorted({(int(r['batch']), int(r['input_size'])) for r in rows if r['preset'] == preset})


def _row(rows, preset, batch, size, case) -> Optional[dict]:
    for r in rows:
        if (r['preset'], r['case'], int(r['batch']), int(r['input_size'])) == (preset, case, batch, size):
            return r
    return None


def _samples(row: dict) -> List[float]:
    text = row.get('samples_s') or ''
    return [float(x) for x in text.split(';')] if text else []


def paired_ratio(num_row: dict, den_row: dict) -> Optional[float]:
    """Median of the per-round ratios numerator/denominator, when both rows were timed in the same
    interleaved rounds (same non-empty ``session``, as many samples); else None.

    Calls of one round run back to back, so a slow phase of a shared machine slows both; the
    ratio of each round cancels it, which the ratio of the two medians does not.
    """
    if not num_row.get('session') or num_row.get('session') != den_row.get('session'):
        return None
    num, den = _samples(num_row), _samples(den_row)
    if not num or len(num) != len(den) or min(den) <= 0:
        return None
    return statistics.median(n / d for n, d in zip(num, den))


def ratio_results(rows: Sequence[dict], target: RatioTarget) -> List[TargetResult]:
    """One result per batch/input setting of the target's preset (one NOT MEASURED if none).

    The value is the median of the per-round ratios when both cases were timed in the same rounds
    (:func:`paired_ratio`), else the ratio of their medians.
    """
    comparison = '<=' if target.at_most else '>='
    out = []
    for batch, size in _groups(rows, target.preset):
        if (target.batches is not None and batch not in target.batches) or \
                batch in target.exclude_batches:
            continue
        num_row = _row(rows, target.preset, batch, size, target.numerator)
        den_row = _row(rows, target.preset, batch, size, target.denominator)
        num = None if num_row is None else _finite(num_row['median_s'])
        den = None if den_row is None else _finite(den_row['median_s'])
        value = num / den if num is not None and den else None
        how = 'ratio of the medians'
        if value is not None:
            paired = paired_ratio(num_row, den_row)
            if paired is not None:
                value, how = paired, f'median of {len(_samples(num_row))} per-round ratios'
        detail = (f'batch {batch}, input {size}: {how}; medians {target.numerator} {num:.4g} s, '
                  f'{target.denominator} {den:.4g} s' if value is not None else
                  f'batch {batch}, input {size}: {target.numerator} or {target.denominator} not measured')
        out.append(TargetResult(target.name, target.preset, value, target.limit, comparison,
                                _check(value, target.limit, comparison), detail))
    if not out:
        out.append(TargetResult(target.name, target.preset, None, target.limit, comparison,
                                NOT_MEASURED, f'preset {target.preset!r} not benchmarked'))
    return out


def bench_memory_result(rows: Sequence[dict], name: str, preset: str, limit_mib: float,
                        cases: Optional[Iterable[str]] = None,
                        batch: Optional[int] = None) -> TargetResult:
    """Largest measured peak memory among ``preset`` rows (optionally of ``cases`` at ``batch``)."""
    cases = set(cases) if cases is not None else None
    picked = [r for r in rows if r['preset'] == preset and _finite(r.get('peak_mem_mib')) is not None
              and (cases is None or r['case'] in cases) and (batch is None or int(r['batch']) == batch)]
    if not picked:
        where = f'{preset} preset' + (f', batch {batch}' if batch is not None else '')
        return TargetResult(name, preset, None, limit_mib, '<', NOT_MEASURED,
                            f'no peak memory measured ({where})')
    worst = max(picked, key=lambda r: float(r['peak_mem_mib']))
    value = float(worst['peak_mem_mib'])
    return TargetResult(name, preset, value, limit_mib, '<', _check(value, limit_mib, '<'),
                        f'largest: {worst["case"]} at batch {worst["batch"]}, input {worst["input_size"]} '
                        f'({worst.get("memory_method", "")})')


def load_run_results(work_dir: str) -> List[dict]:
    """Every complete run result under ``work_dir/runs`` (the runner's rule; none if missing)."""
    return iter_results(work_dir)


def read_plan_wall(work_dir: str) -> Optional[dict]:
    """The runner's ``work_dir/plan_wall.json`` (``{"wall_s", "runs", "jobs", ...}``) or None."""
    path = osp.join(work_dir, PLAN_WALL_FILE)
    if not osp.isfile(path):
        return None
    plan = read_json(path)
    if not isinstance(plan, dict) or _finite(plan.get('wall_s')) is None:
        raise ValueError(f'{path}: expected {{"wall_s": seconds, "runs": N, "jobs": J}}, got {plan!r}')
    return dict(plan, path=path)


def one_seed_wall(plan: dict) -> tuple:
    """(seconds, detail) of one seed's plan from ``plan_wall.json``.

    The file holds the last invocation, which may have run several seeds or skipped finished runs:
    its wall time is scaled by (runs per seed) / (runs executed); exact for a one-seed plan that
    executed every run, an average per seed otherwise (said in the detail).
    """
    runs = int(plan.get('runs', 0))
    executed = int(plan.get('executed', runs))
    seeds = plan.get('seeds') or [None]
    per_seed = runs / len(seeds)
    if executed <= 0 or per_seed <= 0:
        return None, f'{plan["path"]}: no run executed in the last invocation'
    wall_s = float(plan['wall_s']) * per_seed / executed
    detail = (f'plan wall time from {plan["path"]}: {float(plan["wall_s"]):.0f} s for {executed} '
              f'executed of {runs} runs, {plan.get("jobs", "?")} at a time')
    if executed != per_seed:
        detail += f'; scaled to one seed\'s {per_seed:.0f} runs'
    return wall_s, detail + ' (s)'


def run_results(runs: Sequence[dict], work_dir: str) -> List[TargetResult]:
    """Targets read from the runner's results: CPU-preset run peaks and `run --all` wall time
    (the plan's own wall time from ``plan_wall.json`` if the runner wrote one, else the sum of the
    runs' ``total_wall_s``, which overstates it when runs go concurrently)."""
    cpu = [r for r in runs if r.get('preset') == 'cpu']
    mem_name = 'peak memory of any CPU-preset run (runner results)'
    wall_name = '`lpd-bench run --all` wall time, default preset, one seed (runner results)'
    if not cpu:
        why = f'no complete CPU-preset result under {osp.join(work_dir, "runs")}'
        return [TargetResult(mem_name, 'cpu', None, CPU_RUN_MEMORY_LIMIT_MIB, '<', NOT_MEASURED, why),
                TargetResult(wall_name, 'cpu', None, CPU_RUN_ALL_LIMIT_S, '<', NOT_MEASURED, why)]
    peaks = [(float(r['cost']['peak_rss_mb']), r['run_id']) for r in cpu
             if _finite(r.get('cost', {}).get('peak_rss_mb')) is not None]
    if peaks:
        peak, run_id = max(peaks)
        mem = TargetResult(mem_name, 'cpu', peak, CPU_RUN_MEMORY_LIMIT_MIB, '<',
                           _check(peak, CPU_RUN_MEMORY_LIMIT_MIB, '<'),
                           f'largest of {len(peaks)} runs: {run_id}')
    else:
        mem = TargetResult(mem_name, 'cpu', None, CPU_RUN_MEMORY_LIMIT_MIB, '<', NOT_MEASURED,
                           'the results record no cost.peak_rss_mb')
    plan = read_plan_wall(work_dir)
    if plan is not None:
        wall_s, detail = one_seed_wall(plan)
        wall = TargetResult(wall_name, 'cpu', wall_s, CPU_RUN_ALL_LIMIT_S, '<',
                            _check(wall_s, CPU_RUN_ALL_LIMIT_S, '<'), detail)
        return [mem, wall]
    seed = min(r.get('seed', 0) for r in cpu)
    walls = [_finite(r.get('cost', {}).get('total_wall_s')) for r in cpu if r.get('seed', 0) == seed]
    known = [w for w in walls if w is not None]
    total = sum(known) if known else None
    wall = TargetResult(wall_name, 'cpu', total, CPU_RUN_ALL_LIMIT_S, '<',
                        _check(total, CPU_RUN_ALL_LIMIT_S, '<'),
                        f'no {PLAN_WALL_FILE}: sum of cost.total_wall_s over {len(known)} of '
                        f'{len(walls)} runs of seed {seed} (s); overstates concurrent runs (--jobs), '
                        'and a partial plan under-counts')
    return [mem, wall]


def evaluate(rows: Sequence[dict], runs: Sequence[dict], work_dir: str) -> List[TargetResult]:
    """Every target: ratios, bench peak memories and the runner's results.

    All targets are CPU targets (the performance issue sets them on CPU), so only rows measured
    with ``device == 'cpu'`` count; CUDA rows are reported in the tables but not checked.
    """
    rows = [r for r in rows if str(r.get('device') or 'cpu') == 'cpu']
    results = [res for target in RATIO_TARGETS for res in ratio_results(rows, target)]
    results.append(bench_memory_result(rows, 'peak memory of every CPU-preset bench case', 'cpu',
                                       CPU_RUN_MEMORY_LIMIT_MIB))
    results.extend(run_results(runs, work_dir))
    results.append(bench_memory_result(
        rows, f'peak memory, paper setting, LPD step after warm-up, batch {PAPER_MEMORY_BATCH}',
        'paper', PAPER_MEMORY_LIMIT_MIB, cases=['lpd_step_after'], batch=PAPER_MEMORY_BATCH))
    return results


def failed_cases(targets: Sequence[TargetResult], preset: str) -> List[str]:
    """Numerator cases of the failed ratio targets of ``preset`` (the ones worth profiling)."""
    failed = {t.name for t in targets if t.status == FAIL and t.preset == preset}
    return list(dict.fromkeys(t.numerator for t in RATIO_TARGETS
                              if t.name in failed and t.preset == preset))
