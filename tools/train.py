"""Train a model from a config (MMSegmentation's tools/train.py, plus lpd-bench's data check).

    python tools/train.py configs/lpd_bcss.py --cfg-options data_root=PATH
    python tools/train.py configs/lpd_synth_cpu.py --work-dir work_dirs/x [--resume]
    bash tools/dist_train.sh configs/lpd_bcss.py 2 [--cfg-options ...]   # torchrun, CPU or GPU

Before training, the train and val splits of the configured data root are checked
(lpd_bench.data.validation.check_dataset); bad data stops the run with the full list of problems.
"""
import argparse

from lpd_bench.apis import (add_common_args, build_runner, check_data, enable_amp,
                            load_config_from_args, parse_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a weakly supervised segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (CUDA only; the paper config has it on)')
    add_common_args(parser)
    return parser


def main(argv=None):
    args = parse_args(build_parser(), argv)
    cfg = load_config_from_args(args)
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
