"""Thin wrapper of ``lpd-bench bench`` (speed/memory harness), runnable from a checkout.

    python tools/benchmark.py [--preset cpu|paper] [--batch N] [--input S] [--repeats R] ...
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from lpd_bench.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(['bench'] + sys.argv[1:]))
