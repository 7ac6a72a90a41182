"""``lpd-bench run`` and ``lpd-bench list``."""
import argparse
import sys
from pathlib import Path

from ..methods import (DATASETS, DEFAULT_DATASET, PRESETS, ablation_groups, check_groups,
                       method_names)
from .plan import build_plan, methods_without_config

#: Work dir of the BCSS-WSSS plans; another data set's is ``<this>_<dataset>`` (default_work_dir).
DEFAULT_WORK_DIR = 'work_dirs/bench'


def default_work_dir(dataset: str = DEFAULT_DATASET) -> str:
    """``work_dirs/bench`` for BCSS-WSSS, ``work_dirs/bench_<dataset>`` for another data set, so
    that plans of two data sets (same run ids) never share a work dir or a report."""
    return DEFAULT_WORK_DIR if dataset == DEFAULT_DATASET else f'{DEFAULT_WORK_DIR}_{dataset}'


def _add_plan_arguments(parser):
    parser.add_argument('names', nargs='*', metavar='NAME',
                        help=f'registered methods ({", ".join(method_names())}) and/or '
                        f'ablation groups ({", ".join(ablation_groups())}) and/or check groups '
                        f'({", ".join(check_groups())}; e.g. `power`: the report\'s power.md)')
    parser.add_argument('--all', action='store_true', dest='all_runs',
                        help='every method and every ablation (shared runs are run once; check '
                        'groups only when named)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0], metavar='S',
                        help='training seeds (default: 0; e.g. --seeds 0 1 2 for error bars)')
    parser.add_argument('--data', default=None, metavar='PATH',
                        help='the data set\'s root, in its layout (passed as data_root=PATH); '
                        'default: the embedded synthetic set in that layout')
    parser.add_argument('--dataset', choices=DATASETS, default=DEFAULT_DATASET,
                        help="each method's config of the data set: bcss (BCSS-WSSS, default) "
                        'or luad (LUAD-HistoSeg: configs/*_luad*.py)')
    parser.add_argument('--preset', choices=PRESETS, default='cpu',
                        help="each method's config of the preset: cpu (embedded synthetic data, "
                        'configs/*_synth_cpu.py, configs/*_luad_synth_cpu.py) or paper (the real '
                        'data set, configs/*_bcss.py, configs/*_luad.py)')
    parser.add_argument('--work-dir', default=None,
                        help=f'default: {default_work_dir()} (bcss), '
                        f'{default_work_dir("luad")} (luad)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='extra overrides for every run (recorded in the results), e.g. '
                        'train_cfg.max_iters=20 for a smoke test; stage-2 runs get those every '
                        'config has (data, schedule: lpd_bench.stage2.runs)')
    parser.add_argument('--no-stage2', action='store_false', dest='stage2',
                        help="leave out the stage-2 runs (by default each method's main run is "
                        'followed by one: its train pseudo-masks, a segmentation network '
                        'trained on them, tested with no labels)')


def _plan(args):
    """The plan of the arguments; fills ``args.work_dir`` with the data set's default. Methods
    without a config for the data set and preset are left out with a message on stderr."""
    data = str(Path(args.data).resolve()) if args.data else None
    if data is not None and not Path(data).is_dir():
        raise SystemExit(f'--data {args.data}: not a directory')
    if args.work_dir is None:
        args.work_dir = default_work_dir(args.dataset)
    try:
        extra = dict(_split_option(o) for o in args.cfg_options)
        skipped = methods_without_config(args.names, args.all_runs, args.preset, args.dataset)
        plan = build_plan(args.names, args.all_runs, args.seeds, args.preset, data, extra,
                          dataset=args.dataset, stage2=args.stage2)
    except ValueError as err:
        raise SystemExit(str(err))
    for method in skipped:
        print(f'skipped {method}: no config for dataset {args.dataset}, preset {args.preset} '
              f'(its MethodSpec.configs)', file=sys.stderr)
    if skipped and not plan:
        raise SystemExit(f'nothing to run for dataset {args.dataset}, preset {args.preset}')
    return plan


def _split_option(text):
    """'key=value' -> (key, value); the value stays a string (MMEngine parses it)."""
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise ValueError(f'--cfg-options {text!r}: expected KEY=VALUE')
    return key, value


def _describe(spec) -> str:
    groups = ', '.join(f'{m["name"]}={m["value"]}' for m in spec.memberships)
    if spec.depends_on:
        groups = f'stage 2 of {spec.depends_on}'
    options = ' '.join(f'{k}={v}' for k, v in spec.cfg_options.items()) or '(defaults)'
    return f'{spec.run_id:32s} {spec.config:28s} {options}  [{groups}]'


def _jobs(text):
    """``--jobs``: 'auto' (None: one per available core) or a positive integer."""
    if text == 'auto':
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'auto' or a positive integer")
    return int(text)


def _gpus(text):
    from .devices import parse_gpus
    try:
        return parse_gpus(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))


def run_command(args) -> int:
    from .execute import Executor, PlanInterrupted, resolve_jobs
    from .progress import Progress
    plan = _plan(args)
    if args.dry_run:
        for spec in plan:
            print(_describe(spec))
        print(f'{len(plan)} runs')
        return 0
    if args.executor == 'slurm':
        from .slurm import slurm_run_command
        return slurm_run_command(args, plan)
    if args.gpus:
        jobs = (args.jobs or 1) * len(args.gpus)
        executor = Executor(args.work_dir, Progress(len(plan), jobs=jobs), jobs=args.jobs or 1,
                            gpus=args.gpus, gpu_memory_gb=_gpu_memory(args),
                            run_memory_gb=_run_memory(plan, args))
        placed = f' on GPUs {",".join(args.gpus)}, {args.jobs or 1} per GPU'
    else:
        jobs = resolve_jobs(args.jobs, len(plan))
        executor = Executor(args.work_dir, Progress(len(plan), jobs=jobs), jobs=jobs)
        placed = f', {jobs} at a time'
    where = ('' if args.dataset == DEFAULT_DATASET
             else f' of dataset {args.dataset} in {args.work_dir}')
    print(f'{len(plan)} runs{where}{placed}, {executor.threads} threads each')
    try:
        outcome = executor.run_plan(plan)
    except PlanInterrupted as err:
        print(f'{err}: unfinished runs resume on the next `lpd-bench run`')
        return 128 + err.signum
    failed = [run_id for run_id, status in outcome.items() if status == 'failed']
    done = sum(status != 'failed' for status in outcome.values())
    print(f'{done}/{len(plan)} runs complete'
          + (f'; failed: {", ".join(failed)}' if failed else ''))
    return 1 if failed else 0


def _gpu_memory(args):
    """{GPU: GiB} of ``--gpu-memory`` (every GPU the same), else None (asked from the devices)."""
    return None if args.gpu_memory is None else dict.fromkeys(args.gpus, args.gpu_memory)


def _run_memory(plan, args):
    """RunSpec -> its peak GiB from the bench figures of ``--bench-csv`` (None: unknown; no
    CSV: every run only needs a slot)."""
    if not args.bench_csv:
        return None
    from .estimate import EstimateError, estimate_plan, load_figures
    try:
        figures = load_figures(args.bench_csv, args.preset, 'cuda')
    except EstimateError as err:
        raise SystemExit(str(err))
    if figures is None:
        raise SystemExit(f'--bench-csv {args.bench_csv}: no figures of preset {args.preset}')
    peaks = {e.run_id: e.peak_mib for e in estimate_plan(plan, figures)}
    return lambda spec: None if peaks.get(spec.run_id) is None else peaks[spec.run_id] / 1024


def list_command(args) -> int:
    from .results import run_status
    if not args.names:
        args.all_runs = True
    plan = _plan(args)
    counts = {}
    for spec in plan:
        status = run_status(Path(args.work_dir) / 'runs' / spec.run_id)
        counts[status] = counts.get(status, 0) + 1
        print(f'{status:8s} {_describe(spec)}')
    print(', '.join(f'{n} {s}' for s, n in sorted(counts.items())) + f' (of {len(plan)})')
    if args.estimate or args.bench_csv:
        from .estimate import print_estimate
        return print_estimate(plan, args.preset, args.bench_csv, args.jobs or 1)
    return 0


def add_commands(subparsers):
    run = subparsers.add_parser('run', help='train and test methods/ablations (resumable)')
    _add_plan_arguments(run)
    run.add_argument('--dry-run', action='store_true', help='print the plan and exit')
    run.add_argument('--jobs', type=_jobs, default=None, metavar='N',
                     help='runs at a time (default: auto = the available CPU cores, at most one '
                     'per run; with --gpus: per GPU, default 1); each stage gets cores // (runs '
                     'at a time) threads unless OMP_NUM_THREADS is set')
    gpus = run.add_argument_group('GPUs (local executor)')
    gpus.add_argument('--gpus', type=_gpus, default=None, metavar='0,1,...',
                      help='place the runs on these CUDA devices, --jobs per device (default 1), '
                      "each run's stages seeing only its device (CUDA_VISIBLE_DEVICES)")
    gpus.add_argument('--gpu-memory', type=float, default=None, metavar='GIB',
                      help="each GPU's memory for packing runs (default: asked from the device)")
    gpus.add_argument('--bench-csv', default=None, metavar='PERF.csv',
                      help="the runs' peak memory from these `lpd-bench bench` figures: runs "
                      'share a GPU only while their peaks fit (without: --jobs decides alone)')
    slurm = run.add_argument_group('SLURM (--executor slurm: one job per run, through submitit; '
                                   'the options override --slurm-config)')
    slurm.add_argument('--executor', choices=('local', 'slurm'), default='local',
                       help='local (default: runs on this machine, --jobs at a time) or slurm')
    slurm.add_argument('--slurm-config', default=None, metavar='FILE.yaml',
                       help='partition, time, gpus_per_run, cpus_per_run, mem_gb, sbatch '
                       '(more #SBATCH options), setup (shell lines), cluster (slurm | local)')
    slurm.add_argument('--partition', default=None)
    slurm.add_argument('--time', type=int, default=None, metavar='MIN',
                       help='time limit of each job in minutes (default 720; at the limit a job '
                       'is requeued and its run resumes)')
    slurm.add_argument('--gpus-per-run', type=int, default=None, metavar='N', help='default 1')
    slurm.add_argument('--cpus-per-run', type=int, default=None, metavar='N', help='default 8')
    slurm.add_argument('--mem-gb', type=int, default=None, metavar='GB',
                       help="default: the partition's")
    slurm.add_argument('--no-wait', action='store_false', dest='wait',
                       help='return once the jobs are submitted (default: wait and print each '
                       "run's outcome)")
    run.set_defaults(func=run_command)
    lst = subparsers.add_parser('list', help='planned runs and their status')
    _add_plan_arguments(lst)
    lst.add_argument('--estimate', action='store_true',
                     help="each run's expected wall time and peak memory, and the total, from "
                     "`lpd-bench bench` figures of this device (reports/perf.csv) or --bench-csv")
    lst.add_argument('--bench-csv', default=None, metavar='PERF.csv',
                     help='the figures of a stored bench CSV (implies --estimate), e.g. '
                     'reports/perf_cuda_h100/perf.csv')
    lst.add_argument('--jobs', type=_jobs, default=1, metavar='N',
                     help='with --estimate: also the wall time of N runs at a time (default 1)')
    lst.set_defaults(func=list_command)
