"""Test (and evaluate) a checkpoint (MMSegmentation's tools/test.py, plus lpd-bench's metric JSON).

    python tools/test.py configs/lpd_bcss.py CHECKPOINT --cfg-options data_root=PATH
    bash tools/dist_test.sh configs/lpd_bcss.py CHECKPOINT 2

The WSSSMetric JSON (both gatings, both protocols, confusion matrices) is written to ``--out``,
default ``<work_dir>/test_metrics.json``. Test-time augmentation and gating are model settings
(``model.test_cfg``, e.g. ``--cfg-options model.test_cfg.gating=predicted``).
"""
import argparse
import os.path as osp

from cli_common import add_common_args, build_runner, check_data, load_config, parse_args

DEFAULT_METRICS_FILE = 'test_metrics.json'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test a weakly supervised segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='metric JSON to write (default: <work_dir>/'
                        f'{DEFAULT_METRICS_FILE})')
    parser.add_argument('--show-dir', help='save images painted with the predictions here')
    add_common_args(parser)
    return parser


def enable_visualization(cfg, show_dir: str) -> None:
    """Draw predictions into ``show_dir`` (as MMSegmentation's --show-dir)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise SystemExit('--show-dir needs default_hooks.visualization (SegVisualizationHook)')
    hook['draw'] = True
    cfg.visualizer['save_dir'] = show_dir


def set_metrics_file(cfg, out) -> str:
    """Make the test evaluator write its JSON to ``out`` (default in the work dir)."""
    evaluator = cfg.test_evaluator
    if not isinstance(evaluator, dict):
        raise SystemExit('tools/test.py expects one test_evaluator (a WSSSMetric dict), got '
                         f'{type(evaluator).__name__}')
    if out is not None or evaluator.get('output_file') is None:
        evaluator['output_file'] = out or osp.join(cfg.work_dir, DEFAULT_METRICS_FILE)
    return evaluator['output_file']


def main(argv=None):
    args = parse_args(build_parser(), argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    metrics_file = set_metrics_file(cfg, args.out)
    if not args.skip_data_check:
        check_data(cfg, ('test_dataloader', ))
    runner = build_runner(cfg)
    metrics = runner.test()
    runner.logger.info(f'metric JSON: {metrics_file}')
    return metrics


if __name__ == '__main__':
    main()
