"""``lpd-bench data synth|check``: generate the synthetic set, check a dataset folder."""
import sys
import time

from .synthetic import DEFAULT_PATCH_SIZE, DEFAULT_SEED, DEFAULT_SPLIT_SIZES


def add_commands(subparsers) -> None:
    """Add the ``data`` command group to the ``lpd-bench`` parser."""
    data = subparsers.add_parser('data', help='generate the synthetic set or check a dataset')
    sub = data.add_subparsers(dest='data_command', metavar='SUBCOMMAND', required=True)

    synth = sub.add_parser('synth', help='write the synthetic BCSS-WSSS stand-in dataset')
    synth.add_argument('--out', required=True, help='output folder')
    synth.add_argument('--seed', type=int, default=DEFAULT_SEED)
    for split, n in DEFAULT_SPLIT_SIZES.items():
        synth.add_argument(f'--n-{split}', type=int, default=n, help=f'images (default {n})')
    synth.add_argument('--patch-size', type=int, default=DEFAULT_PATCH_SIZE)
    synth.add_argument('--overwrite', action='store_true', help='replace a non-empty --out')
    synth.set_defaults(func=run_synth)

    check = sub.add_parser('check', help='check a BCSS-WSSS-layout folder; exit 1 on problems')
    check.add_argument('root', help='dataset folder')
    check.add_argument('--splits', nargs='+', default=['train', 'val', 'test'],
                       choices=['train', 'val', 'test'])
    check.add_argument('--patch-size', type=int, default=None,
                       help='expected image size (default: manifest.json, else 224)')
    check.set_defaults(func=run_check)


def run_synth(args) -> int:
    """Generate the dataset, printing progress per split and the time taken."""
    from .synthetic import write_synthetic_dataset

    def progress(split, done, total):
        if done == total or done % 100 == 0:
            print(f'  {split}: {done}/{total}', flush=True)

    start = time.perf_counter()
    try:
        out = write_synthetic_dataset(args.out, args.seed, args.n_train, args.n_val, args.n_test,
                                      args.patch_size, overwrite=args.overwrite,
                                      progress=progress)
    except (FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'wrote {out} in {time.perf_counter() - start:.1f} s')
    return 0


def run_check(args) -> int:
    """Print one line per problem and a summary; return 1 if there are problems."""
    from .validation import check_dataset
    start = time.perf_counter()
    problems = check_dataset(args.root, args.splits, args.patch_size)
    for problem in problems:
        print(problem)
    elapsed = time.perf_counter() - start
    if problems:
        print(f'{len(problems)} problem(s) in {args.root} (splits: {", ".join(args.splits)}; '
              f'{elapsed:.1f} s)')
        return 1
    print(f'{args.root}: no problems (splits: {", ".join(args.splits)}; {elapsed:.1f} s)')
    return 0
