"""``lpd-bench report``."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def report_command(args) -> int:
    from .build import ReportError, build_report
    try:
        committed = Path(args.out).resolve() == REPO_ROOT / 'reports'
        root = REPO_ROOT if committed and not args.no_method_readmes else None
        written = build_report(args.work_dir, args.out, method_readmes_root=root)
    except ReportError as err:
        raise SystemExit(str(err))
    for path in written:
        print(path)
    return 0


def add_commands(subparsers):
    parser = subparsers.add_parser('report', help='tables and figures from stored results')
    parser.add_argument('--work-dir', default='work_dirs/bench',
                        help='where `lpd-bench run` stored its runs')
    parser.add_argument('--out', default='reports', help='output folder')
    parser.add_argument('--no-method-readmes', action='store_true',
                        help="do not write each method's results table into its README "
                        '(baselines/<name>/README.md; only done when --out is the repository\'s '
                        'reports/ folder)')
    parser.set_defaults(func=report_command)
