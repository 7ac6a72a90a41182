"""Test (and evaluate) a checkpoint (MMSegmentation's tools/test.py, plus lpd-bench's metric JSON).

    python tools/test.py configs/lpd_bcss.py CHECKPOINT --cfg-options data_root=PATH
    bash tools/dist_test.sh configs/lpd_bcss.py CHECKPOINT 2

The WSSSMetric JSON (both gatings, both protocols, confusion matrices) is written to ``--out``,
default ``<work_dir>/test_metrics.json``. Test-time augmentation and gating are model settings
(``model.test_cfg``, e.g. ``--cfg-options model.test_cfg.gating=predicted``).
``--after-test FILE`` (written by ``lpd-bench run``): work to do on the tested model in this
process once the test is done (lpd_bench.engine.after_test).
"""
import argparse
import os.path as osp

from lpd_bench.apis import (DEFAULT_METRICS_FILE, add_common_args, build_runner, check_data,
                            enable_visualization, load_config_from_args, parse_args,
                            set_metrics_file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test a weakly supervised segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='metric JSON to write (default: <work_dir>/'
                        f'{DEFAULT_METRICS_FILE})')
    parser.add_argument('--show-dir', help='save images painted with the predictions here')
    parser.add_argument('--after-test', metavar='FILE',
                        help='task file of work to run on the tested model afterwards, in this '
                        'process (written by lpd-bench run; lpd_bench.engine.after_test)')
    add_common_args(parser)
    return parser


def main(argv=None):
    args = parse_args(build_parser(), argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_config_from_args(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    metrics_file = set_metrics_file(cfg, args.out)
    if not args.skip_data_check:
        check_data(cfg, ('test_dataloader', ))
    runner = build_runner(cfg)
    metrics = runner.test()
    runner.logger.info(f'metric JSON: {metrics_file}')
    if args.after_test:
        from lpd_bench.engine.after_test import run_task_file
        run_task_file(args.after_test, runner.model, cfg, log=runner.logger.info)
    return metrics


if __name__ == '__main__':
    main()
