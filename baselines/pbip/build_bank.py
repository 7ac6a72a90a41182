"""PBIP stage A: build the clustered prototype bank that stage B (configs/pbip_*.py) trains with.

    python -m baselines.pbip.build_bank configs/pbip_synth_cpu.py [--out BANK.pth] \
        [--seed S] [--num-per-class K] [--cfg-options data_root=PATH ...]

(``python tools/build_prototype_bank.py`` is the same command.) ``--cfg-options`` work as in
tools/train.py (the registered aliases, e.g. data_root, encoder_checkpoint and bank_path, are
propagated). Defaults: --out is the config's bank path, K its prototypes' ``num_per_class``
(else 3), S its ``randomness.seed`` (else 0). S is the run's seed: it seeds k-means and, unless
``--cfg-options randomness.seed=...`` says otherwise, the model build, so that a checkpoint-less
(random) frozen encoder is the one ``tools/train.py --cfg-options randomness.seed=S`` trains
against. Writes BANK and BANK.cost.json (this stage's cost).
"""
import argparse

from mmengine.config import DictAction


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model + data config (e.g. configs/pbip_synth_cpu.py)')
    parser.add_argument('--out', help="bank file to write (default: the config's bank path)")
    parser.add_argument('--num-per-class', type=int, help='prototypes (k-means clusters) per class')
    parser.add_argument('--seed', type=int,
                        help='run seed: k-means and (default) randomness.seed of the model build')
    parser.add_argument('--batch-size', type=int, default=32, help='images per encoder batch')
    parser.add_argument('--niter', type=int, default=50, help='k-means iterations')
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--num-workers', type=int, default=0, help='dataloader workers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as for tools/train.py')
    return parser


def main(argv=None) -> str:
    """Build and save the bank; returns its path."""
    from mmengine.logging import print_log

    from lpd_bench.apis import load_config

    from .prototype_bank import build_prototype_bank, save_prototype_bank

    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)  # a bank_path option reached the prototypes
    prototypes = cfg.model.decode_head.get('prototypes', {})
    out = args.out or prototypes.get('bank_path') or cfg.get('bank_path', None)
    if not out:
        raise SystemExit(f'{args.config} sets no bank path: give --out BANK.pth')
    num_per_class = args.num_per_class or prototypes.get('num_per_class', 3)
    if args.seed is not None and 'randomness.seed' not in (args.cfg_options or {}):
        cfg.randomness = dict(cfg.get('randomness', {}), seed=args.seed)
    seed = args.seed if args.seed is not None else cfg.get('randomness', {}).get('seed') or 0
    bank = build_prototype_bank(cfg, num_per_class=num_per_class, seed=seed,
                                batch_size=args.batch_size, niter=args.niter, device=args.device,
                                num_workers=args.num_workers)
    cost_path = save_prototype_bank(bank, out)
    print_log(f'prototype bank {tuple(bank["prototypes"].shape)} -> {out} '
              f'({bank["wall_time_s"]:.1f} s, {bank["images_per_s"]:.1f} images/s, '
              f'peak RSS {bank["peak_rss_mb"]:.0f} MiB; cost in {cost_path})', logger='current')
    return out


if __name__ == '__main__':
    main()
