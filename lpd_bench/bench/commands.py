"""``lpd-bench bench``: the speed/memory harness (see lpd_bench/bench/harness.py)."""
import argparse
import shlex

#: Default (repeats, warmup) per preset: paper-setting steps take tens of seconds on CPU; CPU-preset
#: steps take ~0.05 s, and single calls on a shared 2-core machine scatter by +-15%, so the medians
#: of 20 interleaved rounds are used.
PRESET_DEFAULTS = {'cpu': (20, 3), 'paper': (2, 1)}


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        'bench', help='measure training/inference speed and peak memory -> reports/perf.md',
        description='Time the hot paths (bare backbone, the training steps of every registered '
        'method, inference with and without TTA, the methods\' own cases) at one batch and input '
        'size in one process, measure each case\'s peak memory and write OUT/perf.md and perf.csv.')
    parser.add_argument('--preset', choices=['cpu', 'paper'], default='cpu',
                        help='cpu: configs/*_synth_cpu.py; paper: configs/*_bcss.py (MiT-B1, k=10)')
    parser.add_argument('--batch', type=int, help='batch size (default: the LPD config\'s)')
    parser.add_argument('--input', type=int, dest='input_size',
                        help='square input size (default: the LPD config\'s input_size, else 224)')
    parser.add_argument('--repeats', type=int, help='timed calls per case (default cpu 20, paper 2)')
    parser.add_argument('--warmup', type=int, help='untimed calls first (default cpu 3, paper 1)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N] (default cpu)')
    parser.add_argument('--cases', nargs='+',
                        help='only these cases of the preset (default: its default set; the '
                        'cases marked on request, e.g. the paper preset\'s encoder speed '
                        'options, run only when named here)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory probes')
    parser.add_argument('--memory-cap-gib', type=float, default=12.0,
                        help='address-space cap of each CPU memory probe; a case over it is '
                        'reported as such and not timed (0: no cap; default 12)')
    parser.add_argument('--out', default='reports', help='folder of perf.md / perf.csv')
    parser.add_argument('--render-only', action='store_true',
                        help='measure nothing: re-write OUT/perf.md from OUT/perf.csv (and the '
                        'reports of other machines in OUT/*/perf.csv)')
    parser.add_argument('--cfg-options', nargs='+', default={}, metavar='KEY=VALUE',
                        help='config overrides applied to every config (mmengine DictAction)')
    parser.set_defaults(func=run)


def parse_cfg_options(pairs) -> dict:
    """KEY=VALUE strings (or an already-parsed dict) -> dict, as mmengine's DictAction parses them."""
    if isinstance(pairs, dict):
        return pairs
    from mmengine.config import DictAction
    namespace = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='cfg_options')(None, namespace, pairs)
    return namespace.cfg_options


def describe_command(settings, args) -> str:
    """The command line that reproduces ``settings`` (recorded in perf.md)."""
    parts = ['lpd-bench', 'bench', '--preset', settings.preset, '--batch', str(settings.batch),
             '--input', str(settings.input_size), '--repeats', str(settings.repeats),
             '--warmup', str(settings.warmup)]
    parts += ['--device', settings.device] if settings.device != 'cpu' else []
    parts += ['--cases', *settings.cases] if settings.cases else []
    parts += ['--no-memory'] if args.no_memory else []
    if settings.cfg_options:
        parts += ['--cfg-options'] + [f'{k}={v}' for k, v in settings.cfg_options.items()]
    return ' '.join(shlex.quote(p) for p in parts)


def run(args) -> int:
    from .harness import BenchSettings, rerender, run_bench
    if args.render_only:
        rerender(args.out)
        return 0
    repeats, warmup = PRESET_DEFAULTS[args.preset]
    settings = BenchSettings(
        preset=args.preset, batch=args.batch, input_size=args.input_size,
        repeats=args.repeats if args.repeats is not None else repeats,
        warmup=args.warmup if args.warmup is not None else warmup, device=args.device,
        cases=args.cases, cfg_options=parse_cfg_options(args.cfg_options),
        memory=not args.no_memory,
        address_space_cap_mib=args.memory_cap_gib * 1024 if args.memory_cap_gib else None,
        out_dir=args.out, command='')
    print_summary(run_bench(settings, describe=lambda s: describe_command(s, args)))
    return 0


def print_summary(rows) -> None:
    """One line per measured case: median time, throughput and peak memory."""
    from .report import MEASURE
    for r in rows:
        if r['record'] != MEASURE:
            continue
        median = 'not timed' if r['median_s'] is None else f'median {r["median_s"]:.4g} s'
        rate = '' if r['images_per_s'] is None else f', {r["images_per_s"]:.3g} images/s'
        peak = '' if r['peak_mem_mib'] is None else f', peak {r["peak_mem_mib"]:.0f} MiB'
        print(f'[bench] {r["preset"]}/{r["case"]} (batch {r["batch"]}, input {r["input_size"]}): '
              f'{median}{rate}{peak}')
