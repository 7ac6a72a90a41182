"""Snapshot step of a run: predictions and prototype maps of the first test images, for the report.

    python -m lpd_bench.runner.snapshots CONFIG CHECKPOINT --out RUN_DIR [--num-images 4]
        [--cfg-options ...]

Writes ``RUN_DIR/preds/<image name>.png`` (label maps, oracle gating, values 0..4, in the palette
of the test dataset's metainfo: BCSS-WSSS's or LUAD-HistoSeg's) for the first ``--num-images``
test images (in the dataset's order) and, for a model with prototypes,
``RUN_DIR/prototype_maps.npz`` with the stage-4 similarity maps of every prototype for the first
one: ``maps`` (C*k, h, w), ``image`` (file name), ``num_per_class``, ``label`` (its oracle image
label).

The runner usually takes them in the test process instead, on the model just tested
(:func:`snapshots_of_tested_model`, ``tools/test.py --after-test``).
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.bcss_meta import PALETTE


def save_label_png(path, labels, palette=PALETTE) -> None:
    """``labels`` as a 'P' PNG with ``palette`` (RGB per value; default BCSS-WSSS's)."""
    image = Image.fromarray(labels.astype(np.uint8), 'P')
    image.putpalette([int(v) for rgb in palette for v in rgb])
    image.save(path)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='run directory to write into')
    parser.add_argument('--num-images', type=int, default=4)
    return parser


def main(argv=None):
    from lpd_bench.apis import add_common_args, load_config, load_model, parse_args

    parser = build_parser()
    add_common_args(parser)
    args = parse_args(parser, argv)
    cfg = load_config(args.config, args.cfg_options, work_dir=args.work_dir or args.out,
                      launcher=args.launcher, init_scope=True)
    save_snapshots(load_model(cfg, args.checkpoint), cfg, args.out, args.num_images)


def snapshots_of_tested_model(model, cfg, out, args=()) -> None:
    """The snapshots of the model ``tools/test.py`` has just tested (``--after-test``: the
    runner's snapshot step in the test process; ``args``: this module's ``--num-images``)."""
    parser = argparse.ArgumentParser(prog='snapshots (after test)')
    parser.add_argument('--num-images', type=int, default=4)
    save_snapshots(model, cfg, out, parser.parse_args(list(args)).num_images)


def save_snapshots(model, cfg, out, num_images: int) -> None:
    """Write the predictions (and prototype maps) of ``model`` (eval mode) on the first
    ``num_images`` images of ``cfg``'s test dataset into the run directory ``out``."""
    import torch
    from mmengine.dataset import pseudo_collate

    from mmseg.registry import DATASETS

    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    out = Path(out)
    (out / 'preds').mkdir(parents=True, exist_ok=True)
    for index in range(min(num_images, len(dataset))):
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate([dataset[index]]), False)
            sample = model.predict(data['inputs'], data['data_samples'])[0]
            name = Path(sample.metainfo['img_path']).name
            save_label_png(out / 'preds' / name,
                           sample.pred_sem_seg_oracle.data[0].cpu().numpy(),
                           dataset.metainfo.get('palette', PALETTE))
            if index == 0 and hasattr(getattr(model, 'decode_head', None), 'prototypes'):
                maps = model._forward(data['inputs']).sim_maps[-1][0].float().cpu().numpy()
                np.savez(out / 'prototype_maps.npz', maps=maps, image=name,
                         num_per_class=model.decode_head.prototypes.num_per_class,
                         label=np.asarray(sample.metainfo['img_label']))
    print(f'snapshots of {min(num_images, len(dataset))} test images in {out}')


if __name__ == '__main__':
    main()
