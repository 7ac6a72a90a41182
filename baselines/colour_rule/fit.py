"""Fit the colour rule: class centroids and pooled covariance from the single-label train images.

    python -m baselines.colour_rule.fit configs/colour_rule_synth_cpu.py --out FIT.pth \
        [--seed S] [--device cpu|cuda] [--batch-size 32] [--num-workers 0] \
        [--cfg-options data_root=PATH ...]

The command line of an ``ExtraStage`` (lpd_bench/methods.py). Reads the config's train dataset
(``train_dataloader.dataset``, with its random augmentations dropped), keeps the images whose
image-level label (from the file name) has one class, and computes the block features of the
config's model (``block_size``, ``smoothing``, ``white_threshold``; :mod:`.rule`). Writes FIT.pth,
an mmengine checkpoint ``{'state_dict': {'centroids', 'precision', 'fit_settings'}, 'meta':
{...}}`` that ``tools/test.py CONFIG FIT.pth`` loads into ``ColourCentroidSegmentor``, and
FIT.pth.cost.json (this stage's cost). The rule is deterministic: ``--seed`` is recorded only.
"""
import argparse
import os.path as osp
import time
from typing import Optional

from mmengine.config import DictAction

from .rule import DEFAULT_COVARIANCE_RIDGE

#: The stage's name (``ExtraStage.name``, the cost record's ``name``).
FIT_STAGE_NAME = 'fit'
#: Transforms dropped from the train pipeline: each image is read once, as loaded.
DROPPED_PREFIXES = ('Random', 'PhotoMetricDistortion', 'Pack')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='colour-rule config (e.g. configs/colour_rule_synth_cpu.py)')
    parser.add_argument('--out', required=True, help='checkpoint to write (FIT.pth)')
    parser.add_argument('--seed', type=int, default=0,
                        help='run seed (recorded; the fit is deterministic)')
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--batch-size', type=int, default=32, help='images per feature batch')
    parser.add_argument('--num-workers', type=int, default=0, help='dataloader workers')
    parser.add_argument('--covariance-ridge', type=float, default=DEFAULT_COVARIANCE_RIDGE,
                        help='added to the diagonal of the pooled covariance (a numerical guard)')
    parser.add_argument('--log-every', type=int, default=500,
                        help='a progress line every this many images')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as for tools/test.py (e.g. data_root=PATH)')
    return parser


def fit_pipeline(pipeline):
    """The train pipeline without random augmentation and packing: results carry ``img``."""
    kept = [t for t in pipeline if not str(t['type']).startswith(DROPPED_PREFIXES)]
    if not kept or kept[0]['type'] != 'LoadImageFromFile':
        raise SystemExit('the colour rule fit expects a train pipeline starting with '
                         f'LoadImageFromFile, got {[t["type"] for t in pipeline]}')
    return kept


def fit_colour_rule(cfg, device: Optional[str] = None, batch_size: int = 32,
                    num_workers: int = 0, log_every: int = 500,
                    covariance_ridge: float = DEFAULT_COVARIANCE_RIDGE) -> dict:
    """Fit the rule of ``cfg`` (model + train data config, default scope set); returns
    ``{'centroids', 'precision', 'covariance', 'stats', 'settings', 'classes', 'images',
    'wall_time_s', 'images_per_s', 'peak_cuda_mb'}``."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.logging import print_log

    from mmseg.registry import DATASETS

    from .rule import ClassStatistics, RuleSettings, block_features

    start = time.perf_counter()
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = cfg.model
    num_classes = int(model.get('num_classes', 4))
    settings = RuleSettings(**{k: model[k] for k in RuleSettings.__dataclass_fields__
                               if k in model})
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    dataset_cfg.pipeline = fit_pipeline(dataset_cfg.pipeline)
    dataset = DATASETS.build(dataset_cfg)
    classes = list(dataset.metainfo['classes'])[:num_classes]
    single = {}
    for index in range(len(dataset)):
        label = np.asarray(dataset.get_data_info(index)['img_label'])
        if label.sum() == 1:
            single[index] = int(label.argmax())
    stats = ClassStatistics(classes)
    counts = np.bincount(list(single.values()), minlength=num_classes)
    print_log(f'colour rule fit: {len(single)} single-label images of {len(dataset)} '
              f'({dict(zip(classes, counts.tolist()))}), {settings.as_dict()}, device {device}',
              logger='current')
    if not single:
        stats.check()  # the error naming every class
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, list(single)), batch_size=batch_size, shuffle=False,
        num_workers=num_workers, collate_fn=pseudo_collate)
    order = list(single.values())
    done, feature_start = 0, time.perf_counter()
    for batch in loader:
        images = torch.stack([torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
                              for img in batch['img']]).to(device)
        features, white = block_features(images.float(), settings)
        owners = torch.tensor(order[done:done + len(images)])
        for c in owners.unique().tolist():
            mask = (owners == c).to(device)
            stats.add(features[mask], white[mask], c)
        previous, done = done, done + len(images)
        if done // log_every > previous // log_every or done == len(order):
            rate = done / max(time.perf_counter() - feature_start, 1e-9)
            print_log(f'colour rule fit: {done}/{len(order)} images ({rate:.1f} images/s)',
                      logger='current')
    fitted = stats.fit(covariance_ridge)
    wall = time.perf_counter() - start
    return {**fitted, 'stats': stats, 'settings': settings, 'classes': classes,
            'covariance_ridge': covariance_ridge,
            'images': done, 'wall_time_s': wall,
            'images_per_s': done / max(time.perf_counter() - feature_start, 1e-9),
            'peak_cuda_mb': (torch.cuda.max_memory_allocated() / 2**20
                             if torch.device(device).type == 'cuda' else None)}


def save_fit(fit: dict, path: str, seed: int, config: str, data_root) -> str:
    """Write the checkpoint and ``<path>.cost.json`` atomically; returns the cost JSON path."""
    import torch

    from lpd_bench.engine.atomic_json import atomic_file, write_json_atomic
    from lpd_bench.engine.hooks import peak_rss_mb

    stats = fit['stats']
    state_dict = {'centroids': fit['centroids'].float(), 'precision': fit['precision'].float(),
                  'fit_settings': fit['settings'].as_tensor()}
    meta = {'method': 'colour_rule', 'stage': FIT_STAGE_NAME, 'seed': seed, 'config': config,
            'data_root': None if data_root is None else str(data_root),
            'classes': fit['classes'], **fit['settings'].as_dict(),
            'covariance_ridge': fit['covariance_ridge'],
            'images_per_class': dict(zip(fit['classes'], stats.images.tolist())),
            'blocks_per_class': dict(zip(fit['classes'], stats.blocks.tolist())),
            'centroids': fit['centroids'].tolist(), 'covariance': fit['covariance'].tolist()}
    with atomic_file(path, 'wb') as f:
        torch.save({'state_dict': state_dict, 'meta': meta}, f)
    cost_path = path + '.cost.json'
    write_json_atomic(cost_path, {
        'name': FIT_STAGE_NAME, 'wall_s': fit['wall_time_s'], 'peak_rss_mb': peak_rss_mb(),
        'peak_cuda_mb': fit['peak_cuda_mb'], 'images': fit['images'],
        'images_per_s': fit['images_per_s'], 'seed': seed, 'checkpoint': osp.abspath(path)})
    return cost_path


def main(argv=None) -> str:
    """Fit and save; returns the checkpoint path."""
    from mmengine.logging import print_log

    from lpd_bench.apis import load_config

    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, init_scope=True)
    fit = fit_colour_rule(cfg, device=args.device, batch_size=args.batch_size,
                          num_workers=args.num_workers, log_every=args.log_every,
                          covariance_ridge=args.covariance_ridge)
    cost_path = save_fit(fit, args.out, args.seed, args.config, cfg.get('data_root', None))
    print_log(f'colour rule fit: {fit["images"]} images, centroids {tuple(fit["centroids"].shape)} '
              f'-> {args.out} ({fit["wall_time_s"]:.1f} s; cost in {cost_path})',
              logger='current')
    return args.out


if __name__ == '__main__':
    main()
