"""Score one checkpoint under several test-time protocol switches and tabulate the difference.

    python tools/compare_test_switches.py configs/lpd_synth_cpu.py CHECKPOINT --out reports/x.md \
        --switch "per_image map merge" model.test_cfg.map_merge=per_image \
        --switch "all ours" model.test_cfg.map_merge=per_image model.test_cfg.align_corners=False

The first row is the config as it is (no override); each ``--switch NAME KEY=VALUE ...`` adds a row
tested with those ``--cfg-options``. Every row is one ``tools/test.py`` subprocess (so each is the
exact test a user runs); its metric JSON is kept beside the table (``<out stem>/<row>.json``). The
table shows mIoU per prediction variant (gating x CRF) under the paper protocol (BG counted) and
the difference to the first row, plus the test wall time.
"""
import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='Markdown table to write')
    parser.add_argument('--switch', nargs='+', action='append', default=[],
                        metavar='NAME_THEN_KEY=VALUE', help='a row: its name, then cfg-options')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='options for every row (e.g. data_root=PATH)')
    parser.add_argument('--work-dir', default='work_dirs/compare_test_switches',
                        help='work dirs of the test runs (logs), one per row')
    parser.add_argument('--protocol', default='bg_counted',
                        help='background protocol of the table (default: bg_counted)')
    args = parser.parse_args(argv)
    for switch in args.switch:
        if len(switch) < 2 or any('=' not in option for option in switch[1:]):
            parser.error(f'--switch needs a name and KEY=VALUE options, got {switch}')
    return args


def slug(name: str) -> str:
    return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_') or 'row'


def run_row(args, name, options, out: Path) -> dict:
    """One tools/test.py run; its metric JSON and wall time."""
    metrics_file = out.parent / out.stem / f'{slug(name)}.json'
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(args.work_dir) / slug(name)
    cmd = [sys.executable, str(TOOLS / 'test.py'), args.config, args.checkpoint,
           '--work-dir', str(work_dir), '--out', str(metrics_file)]
    if args.cfg_options or options:
        cmd += ['--cfg-options', *args.cfg_options, *options]
    print(f'[{name}] {" ".join(cmd)}', flush=True)
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    return {'name': name, 'options': options, 'wall_s': wall,
            'metrics': json.loads(metrics_file.read_text()), 'file': metrics_file.name}


def table(rows, protocol) -> str:
    variants = [v for v in rows[0]['metrics']['results']]
    base = {v: rows[0]['metrics']['results'][v][protocol]['mIoU'] for v in variants}
    head = ['switch', 'cfg-options', *[f'{v} mIoU' for v in variants], 'test wall (s)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        cells = [row['name'], ' '.join(f'`{o}`' for o in row['options']) or '(config as is)']
        for v in variants:
            value = row['metrics']['results'].get(v, {}).get(protocol, {}).get('mIoU')
            if value is None:
                cells.append('-')
            elif row is rows[0]:
                cells.append(f'{value:.2f}')
            else:
                cells.append(f'{value:.2f} ({value - base[v]:+.2f})')
        cells.append(f'{row["wall_s"]:.1f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [run_row(args, 'config as is', [], out)]
    rows += [run_row(args, switch[0], switch[1:], out) for switch in args.switch]
    command = shlex.join(['python', 'tools/compare_test_switches.py', *(argv or sys.argv[1:])])
    text = (f'mIoU (%) of one checkpoint under test-time switches, {args.protocol} protocol; in '
            f'brackets the difference to the first row.\n\nCommand: `{command}`\n\n'
            f'Checkpoint: `{args.checkpoint}`\n\n{table(rows, args.protocol)}\n')
    out.write_text(text)
    print(text)


if __name__ == '__main__':
    main()
