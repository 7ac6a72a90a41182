"""``lpd-bench report``."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Output folder of a BCSS-WSSS report; another data set's goes to ``reports/<dataset>``.
DEFAULT_OUT = 'reports'


def default_out(work_dir) -> str:
    """``reports`` for BCSS-WSSS results, ``reports/<dataset>`` for another data set's (so that a
    LUAD-HistoSeg report never overwrites the BCSS-WSSS one)."""
    from ..data.layouts import DEFAULT_LAYOUT
    from ..runner.results import iter_results
    from .dataset import results_layout
    layout = results_layout(iter_results(work_dir))
    return DEFAULT_OUT if layout is DEFAULT_LAYOUT else f'{DEFAULT_OUT}/{layout.key}'


def report_command(args) -> int:
    from ..runner.commands import default_work_dir
    from .build import ReportError, build_report
    from .dataset import MixedDatasetsError
    work_dir = args.work_dir or default_work_dir(args.dataset)
    try:
        out = args.out or default_out(work_dir)
        committed = Path(out).resolve() == REPO_ROOT / DEFAULT_OUT
        root = REPO_ROOT if committed and not args.no_method_readmes else None
        written = build_report(work_dir, out, method_readmes_root=root)
    except (ReportError, MixedDatasetsError) as err:
        raise SystemExit(str(err))
    for path in written:
        print(path)
    return 0


def add_commands(subparsers):
    from ..methods import DATASETS, DEFAULT_DATASET
    parser = subparsers.add_parser('report', help='tables and figures from stored results')
    parser.add_argument('--work-dir', default=None,
                        help='where `lpd-bench run` stored its runs (default: the one `lpd-bench '
                        'run --dataset` uses, work_dirs/bench or work_dirs/bench_<dataset>)')
    parser.add_argument('--dataset', choices=DATASETS, default=DEFAULT_DATASET,
                        help='picks the default --work-dir (the results say their data set)')
    parser.add_argument('--out', default=None,
                        help=f'output folder (default: {DEFAULT_OUT} for BCSS-WSSS results, '
                        f'{DEFAULT_OUT}/<dataset> for another data set\'s)')
    parser.add_argument('--no-method-readmes', action='store_true',
                        help="do not write each method's results table into its README "
                        '(baselines/<name>/README.md; only done when --out is the repository\'s '
                        'reports/ folder, for BCSS-WSSS results)')
    parser.set_defaults(func=report_command)
