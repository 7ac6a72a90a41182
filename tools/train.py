"""Train a model from a config (MMSegmentation's tools/train.py, plus lpd-bench's data check).

    python tools/train.py configs/lpd_bcss.py --cfg-options data_root=PATH
    python tools/train.py configs/lpd_synth_cpu.py --work-dir work_dirs/x [--resume]
    bash tools/dist_train.sh configs/lpd_bcss.py 2 [--cfg-options ...]   # torchrun, CPU or GPU

Before training, the train and val splits of the configured data root are checked
(lpd_bench.data.validation.check_dataset); bad data stops the run with the full list of problems.
With --resume, the checkpoint the work dir's last_checkpoint names is checked first
(lpd_bench.engine.checkpoint_files.prepare_resume): a truncated, empty or missing one is named in
the log and the newest good older checkpoint is resumed from (the pointer repaired), or, when
there is none, the stage trains from scratch. Checkpoints are written atomically
(lpd_bench.engine.atomic_checkpoint). ``--test-after METRICS_JSON`` tests the trained model
in the same process afterwards, and leaves out a last validation no checkpoint can come of
(lpd_bench.engine.train_then_test; lpd-bench run uses it).
"""
import argparse

from lpd_bench.apis import (AMP_DTYPES, add_common_args, build_runner, check_data, enable_amp,
                            load_config_from_args, parse_args, set_metrics_file)
from lpd_bench.engine.checkpoint_files import prepare_resume
from lpd_bench.engine.train_then_test import SkipLastValidationHook, test_trained_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a weakly supervised segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (CUDA only; the paper config has it on)')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES,
                        help='autocast dtype of AMP (implies --amp; default: the config\'s, else '
                        'float16); bfloat16 runs the whole model under bf16 autocast')
    parser.add_argument('--test-after', metavar='METRICS_JSON',
                        help='after training, test the trained model in this process (as '
                        'tools/test.py --out METRICS_JSON tests the last checkpoint; used by '
                        'lpd-bench run: lpd_bench.engine.train_then_test); a validation after '
                        'the last iteration is then left out when no best-on-val checkpoint '
                        'can come of it')
    parser.add_argument('--after-test', metavar='FILE',
                        help='with --test-after: task file of work to run on the tested model '
                        'afterwards (lpd_bench.engine.after_test)')
    add_common_args(parser)
    return parser


def main(argv=None):
    args = parse_args(build_parser(), argv)
    cfg = load_config_from_args(args)
    if args.amp or args.amp_dtype:
        enable_amp(cfg, dtype=args.amp_dtype)
    cfg.resume = args.resume
    if args.test_after:
        set_metrics_file(cfg, args.test_after)
    if not args.skip_data_check:
        check_data(cfg, ('train_dataloader', 'val_dataloader'))
    resume_notes = prepare_resume(cfg)  # --resume: a good checkpoint, else an older one or none
    runner = build_runner(cfg)
    for note in resume_notes:
        runner.logger.warning(note)
    if args.test_after:
        runner.register_hook(SkipLastValidationHook(log=runner.logger.info))
    runner.train()
    if args.test_after:
        test_trained_model(runner, cfg, args.test_after, args.after_test,
                           log=runner.logger.info)
    return runner


if __name__ == '__main__':
    main()
