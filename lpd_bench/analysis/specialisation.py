"""Does a class's winning prototype follow the tissue's sub-morphology, or only position?

    python -m lpd_bench.analysis.specialisation CONFIG --out OUT.json --seed S --checkpoint CKPT
        [--cfg-options ...]

The runner's post-stage usually runs it in the test process instead, on the model just tested
(:func:`measure_tested_model`, ``tools/test.py --after-test``): the same numbers without a
second process start and model build.

A post-stage of the runner (``lpd_bench.methods.ExtraStage``) for prototype-head methods. For
every test patch, the stage-4 similarity maps of one forward pass (single view, no TTA) are
upsampled to the patch; inside the ground-truth region of each class c, every pixel is assigned
the prototype of c with the highest similarity (the "winning" prototype). Over all test pixels of
c, the report compares that assignment with

- the sub-morphology the synthetic generator drew the pixel from
  (``<data_root>/submorphology/test/<name>.png``, ids in ``legend.json``), and
- the pixel's cell in a coarse ``grid`` x ``grid`` partition of the patch (mere position),

by the normalised mutual information (arithmetic-mean normalisation) of the two labelings.
Specialisation shows as NMI(sub-morphology) clearly above NMI(position); prototypes that split
by position near the borders show the reverse. With k = 1 there is nothing to measure (NaN).
Data without sub-morphology maps (real BCSS-WSSS or LUAD-HistoSeg, synthetic v2) give
``{"available": false}``. Classes are named after the test dataset's metainfo (TUM, ... on
BCSS-WSSS; TE, ... on LUAD-HistoSeg).
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ..data.bcss_meta import TISSUE_CLASSES
from ..data.layouts import DEFAULT_LAYOUT
from ..data.synthetic import SUBMORPHOLOGY_DIR

DEFAULT_GRID = 4
#: Test patches per forward pass.
BATCH_SIZE = 16


def submorphology_dir(data_root, split: str = 'test', layout=DEFAULT_LAYOUT.key) -> Path:
    """Where the generator writes the sub-morphology maps of ``split``; ``data_root`` None is the
    default synthetic set of ``layout`` ('bcss', 'luad')."""
    if data_root is None:
        from ..data.synthetic import default_synthetic_root
        data_root = default_synthetic_root(layout=layout)
    return Path(data_root) / SUBMORPHOLOGY_DIR / split


def has_submorphology(data_root, split: str = 'test', layout=DEFAULT_LAYOUT.key) -> bool:
    """Whether ``data_root`` holds sub-morphology maps of ``split``. For the default synthetic set
    of ``layout`` (None) that depends on its generator version (version 2 writes none, and is
    then not even generated for the question)."""
    if data_root is None:
        from ..data import synthetic
        if synthetic.DEFAULT_VERSION < 3:
            return False
    return submorphology_dir(data_root, split, layout).is_dir()


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of every (a, b) pair of two equally long non-negative integer labelings."""
    a, b = np.asarray(a, dtype=np.int64).ravel(), np.asarray(b, dtype=np.int64).ravel()
    if a.shape != b.shape:
        raise ValueError(f'labelings differ in length: {a.size} vs {b.size}')
    table = np.zeros((int(a.max(initial=-1)) + 1, int(b.max(initial=-1)) + 1), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    return table


def normalized_mutual_info(table: np.ndarray) -> float:
    """NMI of a contingency table: I(A; B) / ((H(A) + H(B)) / 2); 0 when both entropies are 0
    (one label each), NaN for an empty table."""
    table = np.asarray(table, dtype=np.float64)
    total = table.sum()
    if total == 0:
        return float('nan')
    joint = table / total
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mutual = float((joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum())
    entropy = [float(-(p[p > 0] * np.log(p[p > 0])).sum()) for p in (pa, pb)]
    denom = (entropy[0] + entropy[1]) / 2
    return 0.0 if denom <= 0 else max(0.0, mutual / denom)


def position_ids(height: int, width: int, grid: int = DEFAULT_GRID) -> np.ndarray:
    """(H, W) cell index of every pixel in a ``grid`` x ``grid`` partition."""
    rows = np.minimum(np.arange(height) * grid // height, grid - 1)
    cols = np.minimum(np.arange(width) * grid // width, grid - 1)
    return rows[:, None] * grid + cols[None, :]


def winning_prototypes(maps: np.ndarray, num_classes: int, cls: int) -> np.ndarray:
    """(H, W) index (0..k-1) of the strongest of class ``cls``'s k maps; ``maps`` is
    (C*k, H, W), class-major."""
    k = maps.shape[0] // num_classes
    return maps[cls * k:(cls + 1) * k].argmax(axis=0)


def region_winners(maps, mask: np.ndarray, num_classes: int) -> Dict[int, np.ndarray]:
    """The winning prototype of every pixel of each class present in ``mask`` (H, W), from one
    patch's low-resolution maps (torch, (C*k, h, w), class-major): the maps are upsampled to the
    patch (bilinear, corners aligned) and, for each present class, the strongest of its k maps
    is taken inside its region only; :func:`winning_prototypes` over the whole patch gives the
    same winners there. All C*k maps are upsampled in one call, as the measure always did: a
    call on fewer channels can round a few values differently and flip near-ties."""
    import torch.nn.functional as F

    k = maps.shape[0] // num_classes
    upsampled = F.interpolate(maps[None], size=mask.shape, mode='bilinear',
                              align_corners=True)[0].cpu().numpy()
    return {int(cls): upsampled[cls * k:(cls + 1) * k][:, mask == cls].argmax(axis=0)
            for cls in np.unique(mask) if 0 <= cls < num_classes}


class SpecialisationCounter:
    """Accumulates, per class, the contingency of winning prototype vs sub-morphology and vs
    position over many patches. ``class_names`` name the classes in the result (default
    BCSS-WSSS's)."""

    def __init__(self, num_classes: int, num_per_class: int, grid: int = DEFAULT_GRID,
                 class_names: Optional[Sequence[str]] = None):
        self.num_classes, self.k, self.grid = num_classes, num_per_class, grid
        self.class_names = tuple(TISSUE_CLASSES if class_names is None else class_names)
        self.tables: Dict[str, Dict[int, np.ndarray]] = {'submorphology': {}, 'position': {}}

    def add(self, maps: np.ndarray, mask: np.ndarray, submorphology: np.ndarray) -> None:
        """One patch: ``maps`` (C*k, H, W) at the patch size, ``mask`` (H, W) GT classes,
        ``submorphology`` (H, W) generator ids."""
        if maps.shape[1:] != mask.shape:
            raise ValueError(f'maps {maps.shape[1:]} and mask {mask.shape} must have the same '
                             'size')
        self.add_winners({cls: winning_prototypes(maps, self.num_classes, cls)[mask == cls]
                          for cls in range(self.num_classes)}, mask, submorphology)

    def add_winners(self, winners: Mapping[int, np.ndarray], mask: np.ndarray,
                    submorphology: np.ndarray) -> None:
        """One patch, its winning prototypes given: ``winners[c]`` holds, in row-major order, the
        winner (0..k-1) of every pixel of ``mask == c`` (:func:`region_winners`); classes with no
        pixels may be left out."""
        if mask.shape != submorphology.shape:
            raise ValueError(f'mask {mask.shape} and sub-morphology map {submorphology.shape} '
                             'must have the same size')
        cells = position_ids(*mask.shape, grid=self.grid)
        for cls in range(self.num_classes):
            region = mask == cls
            if not region.any():
                continue
            winner = np.asarray(winners[cls], dtype=np.int64)
            for name, other, size in (('submorphology', submorphology[region], 256),
                                      ('position', cells[region], self.grid ** 2)):
                table = self.tables[name].setdefault(cls, np.zeros((self.k, size), np.int64))
                table += np.bincount(winner * size + other.astype(np.int64),
                                     minlength=self.k * size).reshape(self.k, size)

    def result(self) -> dict:
        classes = {}
        for cls, table in self.tables['submorphology'].items():
            nmi = {name: (float('nan') if self.k < 2 else
                          normalized_mutual_info(self.tables[name][cls]))
                   for name in self.tables}
            classes[self.class_names[cls]] = {
                'nmi_submorphology': nmi['submorphology'], 'nmi_position': nmi['position'],
                'pixels': int(table.sum()),
                'prototype_share': (table.sum(axis=1) / max(table.sum(), 1)).round(4).tolist()}
        values = {key: [c[key] for c in classes.values() if not np.isnan(c[key])]
                  for key in ('nmi_submorphology', 'nmi_position')}
        return {'available': True, 'num_per_class': self.k, 'grid': self.grid,
                'classes': classes,
                'mean': {key: (float(np.mean(v)) if v else float('nan'))
                         for key, v in values.items()}}


def same_size_batches(dataset, batch_size: int):
    """The dataset's items in order, in lists of at most ``batch_size`` whose inputs have one
    size (so that batching pads nothing and every image's maps are its own)."""
    batch = []
    for index in range(len(dataset)):
        item = dataset[index]
        if batch and (len(batch) == batch_size
                      or item['inputs'].shape != batch[0]['inputs'].shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--seed', type=int, default=0, help='unused (the stage contract)')
    parser.add_argument('--grid', type=int, default=DEFAULT_GRID)
    return parser


def main(argv=None) -> dict:
    from lpd_bench.apis import add_common_args, load_config, load_model, parse_args

    parser = build_parser()
    add_common_args(parser)
    args = parse_args(parser, argv)
    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher, init_scope=True)
    return measure(cfg, args.out, lambda: load_model(cfg, args.checkpoint), grid=args.grid)


def measure_tested_model(model, cfg, out, args=()) -> dict:
    """The measure on the model ``tools/test.py`` has just tested (``--after-test``: the
    runner's post-stage in the test process; ``args``: this module's ``--grid``)."""
    parser = argparse.ArgumentParser(prog='specialisation (after test)')
    parser.add_argument('--grid', type=int, default=DEFAULT_GRID)
    return measure(cfg, out, lambda: model, grid=parser.parse_args(list(args)).grid)


def measure(cfg, out, get_model, grid: int = DEFAULT_GRID) -> dict:
    """Write the measure of the model ``get_model()`` (called only when the test data has
    sub-morphology maps) on ``cfg``'s test dataset to ``out``; returns it."""
    import torch
    from mmengine.dataset import pseudo_collate
    from PIL import Image

    from lpd_bench.apis import dataset_layout
    from lpd_bench.engine.atomic_json import write_json_atomic
    from mmseg.registry import DATASETS

    dataset_cfg = cfg.test_dataloader.dataset
    layout = dataset_layout(dataset_cfg) or DEFAULT_LAYOUT
    folder = submorphology_dir(dataset_cfg.get('data_root'), 'test', layout.key)
    if not folder.is_dir():
        result = {'available': False,
                  'reason': f'no sub-morphology maps at {folder} (synthetic data v3 writes them)'}
        write_json_atomic(out, result)
        print(result['reason'])
        return result
    model = get_model()
    dataset = DATASETS.build(dataset_cfg)
    head = model.decode_head
    counter = SpecialisationCounter(head.num_classes, head.prototypes.num_per_class, grid,
                                    class_names=dataset.metainfo['classes'][:head.num_classes])
    done = 0
    for items in same_size_batches(dataset, BATCH_SIZE):
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate(items), False)
            batch_maps = model._forward(data['inputs']).sim_maps[-1].float()
        for item, maps in zip(items, batch_maps):
            name = Path(item['data_samples'].metainfo['img_path']).name
            mask = item['data_samples'].gt_sem_seg.data[0].numpy()
            sub_path = folder / name
            if not sub_path.is_file():
                raise FileNotFoundError(
                    f'{sub_path}: no sub-morphology map for test image {name}')
            counter.add_winners(region_winners(maps, mask, head.num_classes), mask,
                                np.asarray(Image.open(sub_path)))
            done += 1
            if done % 64 == 0 or done == len(dataset):
                print(f'specialisation: {done}/{len(dataset)} test patches', flush=True)
    result = counter.result()
    write_json_atomic(out, result)
    print(json.dumps(result['mean']))
    return result


if __name__ == '__main__':
    main()
