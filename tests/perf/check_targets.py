"""Check the performance targets against what ``lpd-bench bench`` and ``lpd-bench run`` measured.

    python tests/perf/check_targets.py [--reports reports] [--work-dir work_dirs/bench]
        [--profile] [--out FILE.md]

Reads ``REPORTS/perf.csv`` (this machine) and ``REPORTS/*/perf.csv`` (other machines' reports,
checked on what they measured), and the runner's results under ``WORK_DIR`` (``runs/*/result.json``
and ``plan_wall.json``: the CPU-preset run targets). Prints one line per target; ``--profile``
also profiles, on this machine, the benchmark case behind each failed ratio target of this
machine's report (at the batch and input size it was measured with); ``--out`` writes the
targets and the profiles as Markdown. Exit status 1 when a target of this machine's report
failed, else 0.
"""
import argparse
import glob
import os.path as osp
import sys
from typing import List, Sequence

from perf_targets import FAIL, NOT_MEASURED, TargetResult, evaluate, failed_cases, load_run_results

from lpd_bench.bench.report import MEASURE, machine_line, read_rows

#: The runner work dir that ``lpd-bench run --work-dir work_dirs/bench`` fills (the run targets).
DEFAULT_WORK_DIR = osp.join('work_dirs', 'bench')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reports', default='reports', help='folder of perf.csv (default reports)')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR,
                        help=f'runner work dir of the run targets (default {DEFAULT_WORK_DIR})')
    parser.add_argument('--profile', action='store_true',
                        help='profile the cases behind failed ratio targets (builds them here)')
    parser.add_argument('--device', default='cpu', help='device of the profiles (default cpu)')
    parser.add_argument('--out', help='also write the targets (and profiles) to this Markdown file')
    return parser.parse_args(argv)


def target_value(t: TargetResult) -> str:
    unit = ' MiB' if 'memory' in t.name else (' s' if 'wall time' in t.name else 'x')
    if t.limit is None:
        return f'{t.value:.3g}{unit} (no limit)' if t.value is not None else 'n/a'
    limit = f'{t.comparison} {t.limit:.4g}{unit}'
    return f'{t.value:.3g}{unit} {limit}' if t.value is not None else f'n/a ({limit})'


def target_table(targets: Sequence[TargetResult]) -> List[str]:
    return ['| target | preset | value vs limit | status | detail |',
            '| --- | --- | --- | --- | --- |'] + [
        f'| {t.name} | {t.preset} | {target_value(t)} | **{t.status}** | {t.detail} |'
        for t in targets]


def measured(rows: Sequence[dict]) -> List[dict]:
    return [r for r in rows if r['record'] == MEASURE]


def profiles(rows: Sequence[dict], targets: Sequence[TargetResult], device: str) -> List[tuple]:
    """(preset, case, batch, input size, profile lines) of each case behind a failed target."""
    from perf_profiling import profile_case
    out = []
    for preset in dict.fromkeys(t.preset for t in targets):
        for case in failed_cases(targets, preset):
            for row in measured(rows):
                if (row['preset'], row['case']) == (preset, case):
                    batch, size = int(row['batch']), int(row['input_size'])
                    print(f'[targets] profiling {preset}/{case} (batch {batch}, input {size})',
                          flush=True)
                    out.append((preset, case, batch, size,
                                profile_case(preset, case, batch, size, device)))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    path = osp.join(args.reports, 'perf.csv')
    rows = read_rows(path)
    if not rows:
        print(f'[targets] {path}: nothing measured (run lpd-bench bench --out {args.reports})')
    targets = evaluate(measured(rows), load_run_results(args.work_dir), args.work_dir)
    md = [f'# Performance targets (development checks of {path})', '', *target_table(targets), '']
    for t in targets:
        print(f'[targets] {t.status:12s} {t.name} ({t.preset}): {t.detail}')
    for other in sorted(glob.glob(osp.join(args.reports, '*', 'perf.csv'))):
        other_rows = read_rows(other)
        checked = [t for t in evaluate(measured(other_rows), [], '') if t.status != NOT_MEASURED]
        print(f'[targets] {other} ({machine_line(other_rows) or "machine not recorded"}): '
              f'{len(checked)} target(s) measured')
        for t in checked:
            print(f'[targets]   {t.status:12s} {t.name} ({t.preset}): {t.detail}')
        md += [f'## {other}', '', machine_line(other_rows) or 'machine not recorded', '']
        md += (target_table(checked) if checked else ['No target applies to what it measured.'])
        md += ['']
    if args.profile:
        for preset, case, batch, size, lines in profiles(rows, targets, args.device):
            print('\n'.join(f'[profile {preset}/{case}] {line}' for line in lines))
            md += [f'## Profile of {case} ({preset}, batch {batch}, input {size})', '', '```',
                   *lines, '```', '']
    failed = [t for t in targets if t.status == FAIL]
    summary = f'{len(failed)} target(s) failed' if failed else 'no target failed'
    print(f'[targets] {summary}')
    if args.out:
        from lpd_bench.engine.atomic_json import write_text_atomic
        write_text_atomic(args.out, '\n'.join(md + [summary + '.', '']))
        print(f'[targets] wrote {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
