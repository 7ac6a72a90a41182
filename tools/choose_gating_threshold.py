"""Choose the predicted gating's threshold on the VALIDATION split (never on test).

    python tools/choose_gating_threshold.py configs/lpd_bcss.py CHECKPOINT [--cfg-options ...]

Runs the model (its ``test_cfg``: TTA, ``gating_score``) over ``val_dataloader``, collects the
classifier probabilities and the image labels of the val masks, and picks the threshold with the
highest mean per-class F1 (lpd_bench.models.gating.choose_gating_threshold). Prints it and writes
a JSON (default ``<work_dir>/gating_threshold.json``). Use it with
``--cfg-options model.test_cfg.gating_threshold=T`` when testing.
"""
import argparse
import os.path as osp

from lpd_bench.apis import add_common_args, dataloader_datasets, load_config_from_args, parse_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Choose test_cfg.gating_threshold on val')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='JSON to write (default: <work_dir>/gating_threshold.json)')
    parser.add_argument('--grid', type=float, nargs='+',
                        help='candidate thresholds (default: 0.05, 0.10, ..., 0.95)')
    add_common_args(parser)
    return parser


def main(argv=None) -> dict:
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from lpd_bench.apis import load_model
    from lpd_bench.engine.atomic_json import write_json_atomic
    from lpd_bench.models.gating import choose_gating_threshold, collect_gating_probabilities

    args = parse_args(build_parser(), argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    cfg = load_config_from_args(args)
    if cfg.get('val_dataloader') is None:
        raise SystemExit(f'{args.config} has no val_dataloader')
    splits = {dataset.get('split') for dataset in dataloader_datasets(cfg, ('val_dataloader', ))}
    if splits != {'val'}:
        raise SystemExit(f'val_dataloader reads split(s) {sorted(map(str, splits))}; the gating '
                         "threshold is chosen on 'val' only (never on test)")
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = load_model(cfg, args.checkpoint)
    probs, labels = collect_gating_probabilities(model, Runner.build_dataloader(cfg.val_dataloader))
    choice = choose_gating_threshold(probs, labels, args.grid)
    result = dict(config=args.config, checkpoint=args.checkpoint, split='val',
                  num_images=int(probs.shape[0]), gating_score=model.protocol.gating_score,
                  **choice)
    out = args.out or osp.join(cfg.work_dir, 'gating_threshold.json')
    write_json_atomic(out, result)
    print(f"gating_threshold={choice['threshold']} (mean per-class F1 on val "
          f"{choice['mean_f1']:.4f}, {probs.shape[0]} images, gating_score="
          f'{model.protocol.gating_score}); written to {out}\n'
          f"test with --cfg-options model.test_cfg.gating_threshold={choice['threshold']}")
    return result


if __name__ == '__main__':
    main()
