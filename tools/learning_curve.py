"""Validation mIoU against training iterations, from the scalars MMEngine logs during training.

    python tools/learning_curve.py NAME=WORK_DIR [NAME=WORK_DIR ...] --out reports/learning_curve.png
        [--key mIoU] [--title TEXT]

Each WORK_DIR is a ``tools/train.py`` work dir; its newest ``<timestamp>/vis_data/scalars.json``
(and older ones, for a resumed run) give one curve of ``--key`` (the validation metric MMEngine
logged, default the paper protocol's mIoU) per NAME. Also writes ``OUT`` with ``.md``: the values
as a table (iteration x name), so the plateau can be read off.
"""
import argparse
import json
from pathlib import Path

import pandas as pd


def validation_curve(work_dir, key: str = 'mIoU') -> pd.Series:
    """iteration -> ``key`` over every run segment of ``work_dir`` (later segments win)."""
    values = {}
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if key in record and 'step' in record:
                values[int(record['step'])] = float(record[key])
    if not values:
        raise SystemExit(f'{work_dir}: no {key!r} in */vis_data/scalars.json (did validation run?)')
    return pd.Series(values).sort_index()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', metavar='NAME=WORK_DIR')
    parser.add_argument('--out', required=True, help='figure path (.png); the table goes to .md')
    parser.add_argument('--key', default='mIoU')
    parser.add_argument('--title', default='Validation mIoU during training')
    args = parser.parse_args(argv)
    curves = {}
    for item in args.runs:
        name, _, work_dir = item.partition('=')
        if not work_dir:
            raise SystemExit(f'expected NAME=WORK_DIR, got {item!r}')
        curves[name] = validation_curve(work_dir, args.key)
    table = pd.DataFrame(curves)
    table.index.name = 'iteration'

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, curve in curves.items():
        ax.plot(curve.index, curve.values, marker='o', markersize=3, label=name)
    ax.set_xlabel('training iteration')
    ax.set_ylabel(f'val {args.key} (%)')
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    out.with_suffix('.md').write_text(
        f'{args.title} (val {args.key}, %), from `python tools/learning_curve.py '
        f'{" ".join(args.runs)} --out {args.out}`.\n\n{table.round(2).to_markdown()}\n')
    print(table.round(2).to_string())
    return table


if __name__ == '__main__':
    main()
