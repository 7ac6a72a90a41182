"""Run a preset's cases in one process, measure peak memory, write the reports (perf.csv, perf.md).

The development targets that check these numbers are not part of the bench: tests/perf/.
"""
import contextlib
import datetime
import gc
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch

from ..methods import PRESETS
from . import cases as C
from .memory import cpu_peak_in_subprocess, cuda_peak_mib
from ..runner.environment import bench_environment
from .report import ENV, MEASURE, merge_rows, read_rows, write_report
from .stats import measure_interleaved


@dataclass
class BenchSettings:
    preset: str = 'cpu'
    batch: Optional[int] = None       # None: the LPD config's train batch size
    input_size: Optional[int] = None  # None: the LPD config's input_size, else 224
    repeats: int = 5
    warmup: int = 2
    device: str = 'cpu'
    cases: Optional[List[str]] = None  # None: every case of the preset
    cfg_options: Dict = field(default_factory=dict)
    memory: bool = True
    address_space_cap_mib: Optional[float] = 12 * 1024  # CPU memory probes; None: no cap
    out_dir: str = 'reports'
    root: str = '.'                   # where configs/ lives
    command: str = ''


def environment(settings: BenchSettings) -> Dict[str, str]:
    """Machine, threads and versions, as (name -> text)."""
    return bench_environment(settings.root, settings.device, settings.command)


def _synchronize(device: str):
    return torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)


def config_path(settings: BenchSettings, spec: C.CaseSpec) -> str:
    return osp.join(settings.root, C.case_config(settings.preset, spec))


def reference_case(preset: str) -> C.CaseSpec:
    """The case whose config gives the default batch and input size: the bare-backbone case
    (the reference of the step ratios), else the preset's first case."""
    cases = C.preset_cases(preset)
    return next((s for s in cases if s.kind == C.BACKBONE), cases[0])


def resolve_defaults(settings: BenchSettings) -> None:
    """Fill a missing batch / input size from the reference case's config."""
    if settings.batch and settings.input_size:
        return
    cfg = C.load_config(config_path(settings, reference_case(settings.preset)),
                        settings.cfg_options)
    settings.batch = settings.batch or C.default_batch_size(cfg)
    settings.input_size = settings.input_size or C.default_input_size(cfg)


def _cpu_memory(spec: C.CaseSpec, settings: BenchSettings, path: str, batch: int, log) -> tuple:
    """(peak MiB, method text, over the cap?) from a fresh-subprocess probe."""
    log(f'[bench] {settings.preset}/{spec.name}: peak memory in a fresh subprocess')
    result = cpu_peak_in_subprocess(dict(
        spec=spec.to_dict(), config=path, batch=batch, size=settings.input_size,
        cfg_options=settings.cfg_options, threads=torch.get_num_threads(),
        address_space_cap_mib=settings.address_space_cap_mib))
    if result['over_cap']:
        return (max(result['peak_mib'], settings.address_space_cap_mib),
                f'over the probe\'s address-space cap of {settings.address_space_cap_mib:.0f} MiB '
                f'(allocation failed at RSS {result["peak_mib"]:.0f} MiB); not timed', True)
    return result['peak_mib'], 'ru_maxrss of a fresh subprocess', False


def measure_cases(specs: Sequence[C.CaseSpec], settings: BenchSettings, batch: int,
                  log=print) -> List[dict]:
    """Peak memory of each case (CPU: first, in capped subprocesses), then all cases built in this
    process and timed in interleaved rounds (:func:`measure_interleaved`); one row per case."""
    cpu_memory = settings.memory and not settings.device.startswith('cuda')
    memory = {}
    for spec in specs:
        memory[spec.name] = (_cpu_memory(spec, settings, config_path(settings, spec), batch, log)
                             if cpu_memory else (None, 'not measured', False))
    timed = [s for s in specs if not memory[s.name][2]]
    timings = {}
    with contextlib.ExitStack() as stack:
        prepared = []
        for spec in timed:
            log(f'[bench] {settings.preset}/{spec.name}: building from {config_path(settings, spec)}')
            prepared.append(stack.enter_context(C.prepared(
                spec, config_path(settings, spec), batch, settings.input_size, settings.device,
                settings.cfg_options)))
        log(f'[bench] {settings.preset}: timing {len(timed)} cases, {settings.warmup} warm-up + '
            f'{settings.repeats} interleaved rounds')
        results = measure_interleaved([p.run for p in prepared], settings.warmup, settings.repeats,
                                      _synchronize(settings.device))
        for spec, case, timing in zip(timed, prepared, results):
            timings[spec.name] = (timing, case.items)
            if settings.memory and not cpu_memory:
                memory[spec.name] = (cuda_peak_mib(case.run), 'torch.cuda.max_memory_allocated', False)
    gc.collect()
    # Rows timed in the same interleaved rounds share a session: their per-round ratios pair up.
    session = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='microseconds')
    rows = []
    for spec in specs:
        peak, method, _ = memory[spec.name]
        timing, items = timings.get(spec.name, (None, batch))
        log(f'[bench] {settings.preset}/{spec.name}: ' + (
            f'median {timing.median_s:.4g} s (min {timing.min_s:.4g}, max {timing.max_s:.4g}), '
            f'{timing.per_second(items):.3g} items/s, ' if timing else 'not timed, ') +
            f'peak {peak if peak is None else round(peak)} MiB')
        rows.append(dict(
            record=MEASURE, preset=settings.preset, case=spec.name, batch=batch,
            input_size=settings.input_size, device=settings.device,
            repeats=timing.repeats if timing else 0, warmup=settings.warmup,
            median_s=timing.median_s if timing else None, min_s=timing.min_s if timing else None,
            max_s=timing.max_s if timing else None,
            images_per_s=timing.per_second(items) if timing else None, peak_mem_mib=peak,
            memory_method=method, threads=torch.get_num_threads(),
            timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            detail=spec.description, session=session if timing else '',
            samples_s=';'.join(f'{x:.6g}' for x in timing.samples) if timing else ''))
    return rows


def current_rows(rows: Sequence[dict]) -> List[dict]:
    """``rows`` without measurements of cases that no preset defines any more."""
    known = {(preset, s.name) for preset in PRESETS for s in C.preset_cases(preset)}
    return [r for r in rows if r['record'] == ENV or (r['preset'], r['case']) in known]


def descriptions() -> Dict[str, str]:
    """Case name -> what it measures, for every case of every preset."""
    return {s.name: s.description for preset in PRESETS for s in C.preset_cases(preset)}


def rerender(out_dir: str, log=print) -> List[dict]:
    """Re-write perf.md from the stored perf.csv (e.g. after adding another machine's report);
    returns its rows."""
    path = osp.join(out_dir, 'perf.csv')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no perf.csv to render (run lpd-bench bench first)')
    rows = read_rows(path)
    write_report(out_dir, rows, descriptions(), keep=current_rows)
    log(f'[bench] re-rendered {osp.join(out_dir, "perf.md")} from {path}')
    return rows


def run_bench(settings: BenchSettings, log=print, describe=None) -> List[dict]:
    """Measure, merge into ``out_dir``/perf.csv, render perf.md; returns this invocation's rows
    (environment and measurements).

    ``describe(settings)``, if given, gives the command line recorded in the report (called once
    the batch and input size defaults are resolved).
    """
    specs = C.select_cases(settings.preset, settings.cases)
    resolve_defaults(settings)
    if describe is not None:
        settings.command = describe(settings)
    batch = settings.batch
    rows = [dict(record=ENV, preset=settings.preset, case=k, batch=batch,
                 input_size=settings.input_size, detail=v)
            for k, v in environment(settings).items()]
    measured = measure_cases(specs, settings, batch, log)
    csv_path, md_path = osp.join(settings.out_dir, 'perf.csv'), osp.join(settings.out_dir, 'perf.md')
    all_rows = merge_rows(current_rows(read_rows(csv_path)), rows + measured)
    write_report(settings.out_dir, all_rows, descriptions(), keep=current_rows)
    log(f'[bench] wrote {csv_path} and {md_path}')
    return rows + measured
