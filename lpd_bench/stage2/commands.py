"""``lpd-bench pseudo-masks RUN_DIR``: the pseudo-mask step on a run of ``lpd-bench run``.

A run directory (``<work_dir>/runs/<run_id>/``) holds the config MMEngine dumped when training
started (``<config name>.py``, with the run's options merged in) and the ``last_checkpoint``
pointer; the pseudo-masks go to ``RUN_DIR/pseudo_masks/<split>/`` unless ``--out`` says otherwise.
"""
import json
from pathlib import Path

#: Folder of a run directory the pseudo-masks are written under, one sub-folder per split.
PSEUDO_MASK_SUBDIR = 'pseudo_masks'


class RunDirError(ValueError):
    """A run directory without what the pseudo-mask step needs."""


def run_config(run_dir) -> Path:
    """The config MMEngine dumped into ``run_dir`` (its only top-level ``*.py`` file)."""
    configs = sorted(Path(run_dir).glob('*.py'))
    if len(configs) != 1:
        found = ', '.join(p.name for p in configs) or 'none'
        raise RunDirError(f'{run_dir}: expected the one config the training dumped there '
                          f'(<config name>.py), found {found}')
    return configs[0]


def run_checkpoint(run_dir) -> Path:
    """The run's last checkpoint (MMEngine's ``last_checkpoint`` pointer, repaired if empty)."""
    from ..runner.results import last_checkpoint
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        raise RunDirError(f'{run_dir}: no checkpoint (last_checkpoint, iter_*.pth): the run has '
                          'not trained yet, or its method is not trained (e.g. the colour rule)')
    return Path(checkpoint)


def run_source(run_dir) -> dict:
    """What the manifest records of the run: its folder, id and (when finished) method."""
    run_dir = Path(run_dir).resolve()
    try:
        method = json.loads((run_dir / 'result.json').read_text()).get('method')
    except (OSError, ValueError, AttributeError):
        method = None
    return dict(run_dir=str(run_dir), run_id=run_dir.name, method=method)


def pseudo_masks_command(args) -> int:
    from .pseudo_masks import run_from_args
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise SystemExit(f'run directory {run_dir} does not exist')
    try:
        config = run_config(run_dir)
        checkpoint = Path(args.checkpoint) if args.checkpoint else run_checkpoint(run_dir)
    except RunDirError as err:
        raise SystemExit(str(err))
    if not checkpoint.is_file():
        raise SystemExit(f'checkpoint {checkpoint} does not exist')
    if args.out:
        out = Path(args.out)
    else:
        out = run_dir / PSEUDO_MASK_SUBDIR
        out = out / args.split[0] if len(args.split) == 1 else out
    run_from_args(args, str(config), str(checkpoint), out, source=run_source(run_dir))
    return 0


def add_commands(subparsers) -> None:
    """Add ``pseudo-masks`` to the ``lpd-bench`` parser."""
    from .pseudo_masks import add_arguments, check_arguments
    parser = subparsers.add_parser(
        'pseudo-masks', help="write a run's pseudo-masks for the second stage",
        description='Pseudo-masks of a trained run (its dumped config and last checkpoint): '
        'the stage-1 test-time protocol, gated by the split\'s image labels (train: the file '
        'names), as palette PNGs plus manifest.json.')
    parser.add_argument('run_dir', help='a run directory of `lpd-bench run` '
                        '(<work_dir>/runs/<run_id>)')
    parser.add_argument('--out', help=f'output folder (default RUN_DIR/{PSEUDO_MASK_SUBDIR}/'
                        '<split>); with several --split, one sub-folder per split in it')
    parser.add_argument('--checkpoint', help='another checkpoint than the last (e.g. the best)')
    add_arguments(parser)

    def command(args) -> int:
        check_arguments(parser, args)
        return pseudo_masks_command(args)

    parser.set_defaults(func=command)
