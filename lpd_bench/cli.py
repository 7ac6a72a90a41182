"""The ``lpd-bench`` command.

Each command group lives next to the code it drives and exposes ``add_commands(subparsers)``; this
module only assembles them, importing each group lazily so that ``lpd-bench --help`` stays fast.
"""
import argparse
import importlib
import sys

#: (module, help) of every command group; each module defines add_commands(subparsers).
COMMAND_GROUPS = (
    'lpd_bench.data.commands',
    'lpd_bench.runner.commands',
    'lpd_bench.report.commands',
    'lpd_bench.bench.commands',
    'lpd_bench.stage2.commands',
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='lpd-bench',
        description='Benchmark of LPD and baselines for weakly supervised segmentation of '
        'histopathology (BCSS-WSSS).')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for module_name in COMMAND_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command group not built yet
        module.add_commands(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
