"""Thin wrapper of ``lpd-bench bench`` (speed/memory harness).

    python tools/benchmark.py [--preset cpu|paper] [--batch N] [--input S] [--repeats R] ...
"""
import sys

from lpd_bench.cli import main

if __name__ == '__main__':
    sys.exit(main(['bench'] + sys.argv[1:]))
