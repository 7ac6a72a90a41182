"""Pretrain the CPU preset's frozen refiner encoder on a train split, once, deterministically.

    python tools/pretrain_cpu_encoder.py [configs/lpd_synth_cpu.py] [--cfg-options data_root=PATH]
        [--iters N] [--seed S] [--batch-size B] [--source-size S] [--force] [--probe]
        [--json OUT.json]

Reads the config's refiner encoder (``model.decode_head.refiner_loss.encoder``: a
``PatchMLPEncoder`` backbone, or ``SyntheticPretrainedPatchMLP`` whose ``pretrain`` settings are
then the defaults), its ``cutout_size`` and the train dataset's ``data_root`` (None: the default
synthetic set), and builds the cached weights that ``SyntheticPretrainedPatchMLP`` loads
(:func:`lpd_bench.models.encoder_pretraining.pretrained_encoder_path`; an existing cache file is
reused unless ``--force``). Prints the progress, the time, the train and val crop accuracy of the
pretraining head and the output path. ``--probe`` also compares, with a linear probe fitted on
fixed crops of the single-label train images and measured on the val crops whose mask is one
class (plain and masked like the refiner's cut-outs), the pretrained encoder with the random
``PatchMLPEncoder`` (three seeds) and with colour mean/std alone (reports/cpu_encoder.md).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default='configs/lpd_synth_cpu.py',
                        help='config whose refiner encoder and train data are used')
    parser.add_argument('--iters', type=int, help='pretraining steps (default: the setting)')
    parser.add_argument('--seed', type=int, help='seed (default: the setting)')
    parser.add_argument('--batch-size', type=int, help='crops per step (default: the setting)')
    parser.add_argument('--source-size', type=int,
                        help='side the images are brought to before cropping '
                        '(default: the setting)')
    parser.add_argument('--force', action='store_true', help='rebuild even if cached')
    parser.add_argument('--probe', action='store_true',
                        help='linear-probe comparison with the random encoder and colour stats')
    parser.add_argument('--json', help='write the numbers to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (e.g. data_root=PATH)')
    return parser


def config_inputs(cfg) -> tuple:
    """(encoder backbone config, cutout_size, data_root, pretrain overrides) of a config."""
    from lpd_bench.apis import leaf_datasets
    refiner = cfg.model.get('decode_head', {}).get('refiner_loss')
    if refiner is None:
        raise SystemExit('the config has no model.decode_head.refiner_loss (refiner off)')
    backbone = refiner['encoder']['backbone'].to_dict()
    pretrain = dict(backbone.get('pretrain') or {})
    roots = {d.get('data_root') for d in leaf_datasets(cfg.train_dataloader['dataset'])}
    if len(roots) != 1:
        raise SystemExit(f'the train dataloader reads several data roots {sorted(map(str, roots))}')
    return backbone, refiner.get('cutout_size'), roots.pop(), pretrain


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from lpd_bench.apis import load_config
    from lpd_bench.models import encoder_pretraining as ep
    from mmseg.registry import MODELS
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    backbone_cfg, cutout_size, data_root, pretrain = config_inputs(cfg)
    for key in ('iters', 'seed', 'batch_size', 'source_size'):
        if getattr(args, key) is not None:
            pretrain[key] = getattr(args, key)
    root = ep.resolve_data_root(data_root)
    path = ep.pretrained_encoder_path(backbone_cfg, root, cutout_size, build=False, **pretrain)
    if args.force and path.is_file():
        path.unlink()
    cached = path.is_file()
    started = time.perf_counter()
    path = ep.pretrained_encoder_path(backbone_cfg, root, cutout_size, progress=print, **pretrain)
    saved = ep.read_pretrained(path)
    meta = saved['meta']
    numbers = dict(path=str(path), data_root=str(root), reused_cache=cached,
                   settings=meta['key']['settings'], pretrain_seconds=meta['seconds'],
                   wall_seconds=round(time.perf_counter() - started, 2),
                   train_crop_accuracy=meta['train_crop_accuracy'],
                   evaluation=meta['evaluation'],
                   threads=torch.get_num_threads())
    print(f'{"reused" if cached else "built"} {path}')
    print(f'pretraining time {meta["seconds"]:.1f} s (1 thread); train crop accuracy '
          f'(last tenth of the steps) {meta["train_crop_accuracy"]:.3f}')
    for name, value in meta['evaluation'].items():
        print(f'{name}: {value}')
    if args.probe:
        size = cutout_size
        source = meta['key']['settings']['source_size']
        train = ep.probe_train_crops(root, source, size)
        val = ep.eval_crops(root, 'val', source, size)
        val_masked = (ep.mask_views(val[0]), val[1])
        pretrained = MODELS.build(ep.backbone_config(backbone_cfg))
        pretrained.load_state_dict(saved['state_dict'])
        rows = {}

        encoder_cfg = cfg.model.decode_head.refiner_loss.encoder.to_dict()

        def probe(name, backbone=None, feature_fn=None):
            rows[name] = dict(
                val=ep.linear_probe_accuracy(backbone, train, val, feature_fn),
                val_masked=ep.linear_probe_accuracy(backbone, train, val_masked, feature_fn))
            print(f'linear probe, {name}: val {rows[name]["val"]}, '
                  f'masked {rows[name]["val_masked"]}')
            if backbone is not None:  # the refiner's view: cosine on the projected embedding
                encoder = MODELS.build(dict(encoder_cfg, backbone=ep.backbone_config(backbone_cfg)))
                encoder.backbone.load_state_dict(backbone.state_dict())
                embed = torch.no_grad()(encoder)
                rows[name]['cosine_val'] = ep.cosine_geometry(embed, train, val)
                rows[name]['cosine_val_masked'] = ep.cosine_geometry(embed, train, val_masked)
                print(f'  cosine centroids: val {rows[name]["cosine_val"]}, '
                      f'masked {rows[name]["cosine_val_masked"]}')

        probe('pretrained', pretrained)
        for seed in range(3):
            torch.manual_seed(seed)
            random = MODELS.build(ep.backbone_config(backbone_cfg))
            random.init_weights()
            probe(f'random (init seed {seed})', random)
        probe('colour mean+std (6-d)', feature_fn=ep.colour_statistics)
        numbers['linear_probe'] = dict(train_crops=len(train[1]), val_crops=len(val[1]), rows=rows)
    if args.json:
        from lpd_bench.engine.atomic_json import write_json_atomic
        write_json_atomic(args.json, numbers)
    return 0


if __name__ == '__main__':
    sys.exit(main())
