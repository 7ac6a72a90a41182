"""``lpd-bench data synth|check``: generate the synthetic set, check a dataset folder."""
import sys
import time

from .synthetic import DEFAULT_PATCH_SIZE, DEFAULT_SEED, DEFAULT_VERSION, SPLIT_SIZES, VERSIONS
from .synthetic_v3 import DIFFICULTIES

#: Version-3 knob flags: (flag, Knobs field, help).
KNOB_FLAGS = (
    ('--heterogeneity', 'heterogeneity', 'sub-morphologies mixed per class region, 0..1'),
    ('--lookalike', 'lookalike', "pull of the classes' colour statistics together, 0..1"),
    ('--stain-variation', 'stain_variation', 'stain variation, >= 0 (1 = version 2)'),
    ('--mix-scale', 'mix_scale', 'blob size (px at 224 px) of the sub-morphology partition'),
)


def add_commands(subparsers) -> None:
    """Add the ``data`` command group to the ``lpd-bench`` parser."""
    data = subparsers.add_parser('data', help='generate the synthetic set or check a dataset')
    sub = data.add_subparsers(dest='data_command', metavar='SUBCOMMAND', required=True)

    synth = sub.add_parser('synth', help='write the synthetic BCSS-WSSS stand-in dataset')
    synth.add_argument('--out', required=True, help='output folder')
    synth.add_argument('--seed', type=int, default=DEFAULT_SEED)
    synth.add_argument('--version', type=int, choices=VERSIONS, default=DEFAULT_VERSION,
                       help=f'generator version (default {DEFAULT_VERSION}); 3: mixed '
                       'sub-morphologies, look-alike colours, knobs, sub-morphology maps')
    for split in ('train', 'val', 'test'):
        sizes = ', '.join(f'v{v}: {SPLIT_SIZES[v][split]}' for v in VERSIONS)
        synth.add_argument(f'--n-{split}', type=int, default=None, help=f'images (default {sizes})')
    synth.add_argument('--patch-size', type=int, default=DEFAULT_PATCH_SIZE)
    synth.add_argument('--difficulty', choices=list(DIFFICULTIES), default=None,
                       help='version 3: preset of the knobs below (default: default)')
    for flag, field, text in KNOB_FLAGS:
        synth.add_argument(flag, type=float, default=None, dest=field,
                           help=f'version 3: {text} (default: the difficulty\'s, '
                           f'{getattr(DIFFICULTIES["default"], field):g} in default)')
    synth.add_argument('--overwrite', action='store_true', help='replace a non-empty --out')
    synth.set_defaults(func=run_synth)

    check = sub.add_parser('check', help='check a BCSS-WSSS-layout folder; exit 1 on problems')
    check.add_argument('root', help='dataset folder')
    check.add_argument('--splits', nargs='+', default=['train', 'val', 'test'],
                       choices=['train', 'val', 'test'])
    check.add_argument('--patch-size', type=int, default=None,
                       help='expected image size (default: manifest.json, else 224)')
    check.set_defaults(func=run_check)


def synth_knobs(args):
    """The version-3 Knobs of the arguments (a --difficulty preset, then single knobs), or None
    for version 2 (where any knob flag is an error: ValueError)."""
    from dataclasses import replace
    given = {field: getattr(args, field) for _, field, _ in KNOB_FLAGS
             if getattr(args, field) is not None}
    if args.version == 2:
        if given or args.difficulty is not None:
            raise ValueError('--difficulty and the knob flags apply to --version 3 only')
        return None
    return replace(DIFFICULTIES[args.difficulty or 'default'], **given)


def run_synth(args) -> int:
    """Generate the dataset, printing progress per split and the time taken."""
    from .synthetic import write_synthetic_dataset

    def progress(split, done, total):
        if done == total or done % 100 == 0:
            print(f'  {split}: {done}/{total}', flush=True)

    start = time.perf_counter()
    try:
        knobs = synth_knobs(args)
        out = write_synthetic_dataset(args.out, args.seed, args.n_train, args.n_val, args.n_test,
                                      args.patch_size, overwrite=args.overwrite,
                                      progress=progress, version=args.version, knobs=knobs)
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
