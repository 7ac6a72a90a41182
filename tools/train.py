"""Train a model from a config (MMSegmentation's tools/train.py, plus lpd-bench's data check).

    python tools/train.py configs/lpd_bcss.py --cfg-options data_root=PATH
    python tools/train.py configs/lpd_synth_cpu.py --work-dir work_dirs/x [--resume]
    bash tools/dist_train.sh configs/lpd_bcss.py 2 [--cfg-options ...]   # torchrun, CPU or GPU

Before training, the train and val splits of the configured data root are checked
(lpd_bench.data.validation.check_dataset); bad data stops the run with the full list of problems.
"""
import argparse
import logging

from cli_common import add_common_args, build_runner, check_data, load_config, parse_args

import torch
from mmengine.logging import print_log


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a weakly supervised segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (CUDA only; the paper config has it on)')
    add_common_args(parser)
    return parser


def enable_amp(cfg) -> None:
    """Switch the optimiser wrapper to AmpOptimWrapper (as MMSegmentation's --amp)."""
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        return
    if not torch.cuda.is_available():
        raise SystemExit('--amp needs a CUDA device (AmpOptimWrapper does not run on CPU)')
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise SystemExit('--amp is only supported when optim_wrapper.type is OptimWrapper, got '
                         f'{cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def main(argv=None):
    args = parse_args(build_parser(), argv)
    cfg = load_config(args)
    if args.amp:
        enable_amp(cfg)
    cfg.resume = args.resume
    if not args.skip_data_check:
        check_data(cfg, ('train_dataloader', 'val_dataloader'))
    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
