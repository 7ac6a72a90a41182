"""``lpd-bench data synth|check|stats``: generate the synthetic set, check a dataset folder,
compute its normalisation statistics."""
import sys
import time

from .layouts import LAYOUTS
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
    data = subparsers.add_parser(
        'data', help='generate the synthetic set, check a dataset, compute its statistics')
    sub = data.add_subparsers(dest='data_command', metavar='SUBCOMMAND', required=True)

    synth = sub.add_parser('synth', help='write the synthetic stand-in dataset')
    synth.add_argument('--out', required=True, help='output folder')
    synth.add_argument('--layout', choices=list(LAYOUTS), default='bcss',
                       help='bcss: BCSS-WSSS names, classes and palette (default); luad: the '
                       'same images as LUAD-HistoSeg (<patient>-<x>-<y>-[a b c d].png, TE, NEC, '
                       'LYM, TAS)')
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

    check = sub.add_parser('check', help='check a BCSS-WSSS or LUAD-HistoSeg folder; exit 1 on '
                           'problems')
    check.add_argument('root', help='dataset folder')
    check.add_argument('--splits', nargs='+', default=['train', 'val', 'test'],
                       choices=['train', 'val', 'test'])
    check.add_argument('--patch-size', type=int, default=None,
                       help='expected image size (default: manifest.json, else 224)')
    check.set_defaults(func=run_check)

    stats = sub.add_parser('stats', help='per-channel mean and std (BGR) of the train split, for '
                           "a config's data_preprocessor")
    stats.add_argument('root', help='dataset folder (either layout)')
    stats.set_defaults(func=run_stats)


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
                                      progress=progress, version=args.version, knobs=knobs,
                                      layout=args.layout)
    except (FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'wrote {out} in {time.perf_counter() - start:.1f} s')
    return 0


def run_check(args) -> int:
    """Print one line per problem and a summary; return 1 if there are problems."""
    from .validation import check_dataset, detect_layout
    start = time.perf_counter()
    print(f'{args.root}: layout {detect_layout(args.root)}', flush=True)
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


def run_stats(args) -> int:
    """Print the train split's per-channel mean and std (B, G, R) on 0..1 and 0..255 and the
    data_preprocessor lines; return 2 on a missing/empty train folder or an unreadable image."""
    from .channel_stats import CHANNELS, ImageReadError, channel_stats, train_images
    from .validation import DatasetError, detect_layout
    start = time.perf_counter()
    try:
        paths = train_images(args.root)
        print(f'{args.root}: layout {detect_layout(args.root)}; {len(paths)} train images',
              flush=True)
        step = max(1, len(paths) // 20)

        def progress(done):
            if done == len(paths) or done % step == 0:
                print(f'  {done}/{len(paths)} images ({time.perf_counter() - start:.1f} s)',
                      file=sys.stderr, flush=True)

        stats = channel_stats(paths, progress)
    except (DatasetError, ImageReadError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2

    def row(values, digits):
        return ', '.join(f'{round(v, digits)}' for v in values)

    order = ', '.join(CHANNELS)
    print(f'{stats.images} images, {stats.pixels} pixels; channel order {order} as the loader '
          'reads them (OpenCV; configs keep bgr_to_rgb=False); std with ddof=0')
    print(f'mean (0..1, {order}):   {row(stats.mean_01, 8)}')
    print(f'std  (0..1, {order}):   {row(stats.std_01, 8)}')
    print(f'mean (0..255, {order}): {row(stats.mean_255, 6)}')
    print(f'std  (0..255, {order}): {row(stats.std_255, 6)}')
    print("# for the config's data_preprocessor (SegDataPreProcessor, bgr_to_rgb=False):")
    print(f'mean=[{row(stats.mean_255, 6)}],')
    print(f'std=[{row(stats.std_255, 6)}],')
    return 0
