"""``lpd-bench report``."""


def report_command(args) -> int:
    from .build import ReportError, build_report
    try:
        written = build_report(args.work_dir, args.out)
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
    parser.set_defaults(func=report_command)
