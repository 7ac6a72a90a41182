"""PBIP stage A: build the clustered prototype bank that stage B (configs/pbip_*.py) trains with.

    python tools/build_prototype_bank.py configs/pbip_synth_cpu.py --out work_dirs/bank.pth \
        [--cfg-options data_root=PATH ...] [--num-per-class K] [--seed S]

Defaults: --out is the config's ``bank_path``, K its prototypes' ``num_per_class`` (else 3), S its
``randomness.seed`` (else 0). Writes BANK and BANK.cost.json (the stage's cost, for the runner).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from baselines.pbip.prototype_bank import build_prototype_bank, save_prototype_bank  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model + data config (e.g. configs/pbip_synth_cpu.py)')
    parser.add_argument('--out', help='bank file to write (default: the config\'s bank_path)')
    parser.add_argument('--num-per-class', type=int, help='prototypes (k-means clusters) per class')
    parser.add_argument('--seed', type=int, help='k-means seed')
    parser.add_argument('--batch-size', type=int, default=32, help='images per encoder batch')
    parser.add_argument('--niter', type=int, default=50, help='k-means iterations')
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--num-workers', type=int, default=0, help='dataloader workers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as for tools/train.py')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('data_root', None) is not None:  # same propagation as tools/train.py
        cfg.train_dataloader.dataset.data_root = cfg.data_root
    out = args.out or cfg.get('bank_path', None)
    if not out:
        raise SystemExit(f'{args.config} sets no bank_path: give --out BANK.pth')
    prototypes = cfg.model.decode_head.get('prototypes', {})
    num_per_class = args.num_per_class or prototypes.get('num_per_class', 3)
    seed = args.seed if args.seed is not None else cfg.get('randomness', {}).get('seed', 0) or 0
    bank = build_prototype_bank(cfg, num_per_class=num_per_class, seed=seed,
                                batch_size=args.batch_size, niter=args.niter, device=args.device,
                                num_workers=args.num_workers)
    cost_path = save_prototype_bank(bank, out)
    print_log(f'prototype bank {tuple(bank["prototypes"].shape)} -> {out} '
              f'({bank["wall_time_s"]:.1f} s, {bank["images_per_s"]:.1f} images/s, '
              f'peak RSS {bank["peak_rss_mb"]:.0f} MiB; cost in {cost_path})', logger='current')


if __name__ == '__main__':
    main()
