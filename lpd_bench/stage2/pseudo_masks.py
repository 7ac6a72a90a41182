"""Pseudo-masks from a trained stage-1 model: the first step of the second stage.

    python -m lpd_bench.stage2.pseudo_masks CONFIG CHECKPOINT --out DIR [--split train|val ...]
        [--threshold T] [--score] [--cfg-options KEY=VALUE ...]

Runs the stage-1 model's own test-time protocol (``model.test_cfg``: TTA, stage fusion,
background channel, DenseCRF when the config has it on) over a split, with the **oracle gating
of that split's image labels**: for ``train`` the labels in the file names (the weak labels every
method trains on; train has no masks, and this step cannot read any: the pipeline has no
``LoadAnnotations`` and a train image naming a mask is refused), for ``val`` the labels the val
dataset gives (the classes present in its masks). Any registered method whose model is a
``WeaklySupervisedSegmentor`` works (LPD, CAM, the PBIP-style baselines).

Output (:mod:`.mask_folder`): one palette PNG per image, same name and size, values 0..4 in the
dataset layout's palette, and ``manifest.json`` (config, checkpoint with its sha256, protocol,
split, counts, class frequencies, threshold). ``--threshold T``: pixels whose winning score (the
configured scores after fusion, gating, background and CRF: ``seg_logits``) is below T are
written 255 (ignored by the second stage's loss); default none, as the public two-stage code.
``--score`` (val only): the written masks' mIoU against the val masks (:mod:`.quality`), stored
in the manifest. A folder holding another run's masks is refused; a killed run is resumed by the
same command (the whole PNGs it wrote are kept).
"""
import argparse
import copy
import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..apis import load_config
from ..data.layout_dataset import LayoutDataset
from .mask_folder import (IGNORE_INDEX, NUM_CLASSES, MaskFolderError, finish_folder, open_folder,
                          read_mask, value_counts, write_mask)

SPLITS = ('train', 'val')
#: Where the oracle gating's labels come from, per split (recorded in the manifest).
LABEL_SOURCES = {'train': 'image-level labels in the train file names (no mask is read)',
                 'val': "image labels of the val dataset (the classes present in its masks)"}
SCHEMA = 1


class PseudoMaskError(ValueError):
    """The config, model or data cannot give pseudo-masks under this step's rules."""


def inference_pipeline(pipeline) -> list:
    """The test pipeline without ``LoadAnnotations``: no mask is loaded for inference."""
    return [copy.deepcopy(step) for step in pipeline
            if 'LoadAnnotations' not in str(step.get('type'))]


def split_dataset_cfg(cfg, split: str) -> dict:
    """The config's test dataset, on ``split``, with the inference pipeline, every image (not a
    test subset)."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    dataset = copy.deepcopy(cfg.test_dataloader['dataset'])
    if 'dataset' in dataset or 'datasets' in dataset:
        raise PseudoMaskError('the pseudo-mask step reads one dataset of a layout '
                              '(BCSSWSSSDataset, LUADHistoSegDataset), not a wrapper '
                              f'({dataset.get("type")})')
    dataset.update(split=split, pipeline=inference_pipeline(dataset.get('pipeline', [])),
                   test_mode=True)
    # every image of the split: a test subset (``indices``) would leave the second stage's
    # train images without masks
    dataset.pop('indices', None)
    return dataset


def assert_no_masks(dataset) -> None:
    """Refuse a train dataset that would read masks: an image naming a mask, or a pipeline step
    loading one. Train pseudo-masks are gated by the file-name labels only."""
    loaders = [type(t).__name__ for t in dataset.pipeline.transforms
               if 'LoadAnnotations' in type(t).__name__]
    named = [info['img_path'] for info in (dataset.get_data_info(i) for i in range(len(dataset)))
             if info.get('seg_map_path') is not None]
    if loaders or named:
        raise PseudoMaskError(
            'train pseudo-masks are gated by the file-name labels only and never read a mask, '
            f'but the pipeline has {loaders or "no mask loader"} and '
            f'{len(named)} train image(s) name a mask' + (f' (e.g. {named[0]})' if named else ''))


def build_split_dataset(cfg, split: str, indices=None) -> LayoutDataset:
    """The dataset of ``split`` the pseudo-masks are written for (a layout's dataset); with
    ``indices``, only those images (in that order).

    A subset is built from the config, never with ``BaseDataset.get_subset``: mmengine 0.10.7's
    ``_copy_without_annotation(memo=dict())`` keeps one deepcopy memo for the whole process,
    keyed by ``id()`` of objects that may since have died, so a second subset in the same process
    can get a stale copy for a new object (seen: a val dataset whose pipeline was a dataset)."""
    from mmseg.registry import DATASETS
    dataset_cfg = split_dataset_cfg(cfg, split)
    if indices is not None:
        dataset_cfg['indices'] = list(indices)
    dataset = DATASETS.build(dataset_cfg)
    if not isinstance(dataset, LayoutDataset):
        raise PseudoMaskError('the pseudo-mask step needs a dataset of a layout '
                              f'(BCSSWSSSDataset, LUADHistoSegDataset), got '
                              f'{type(dataset).__name__}')
    if split == 'train':
        assert_no_masks(dataset)
    return dataset


def checkpoint_record(path) -> dict:
    """Path, size, modification time and sha256 of a checkpoint file."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    stat = path.stat()
    return dict(path=str(path), size=stat.st_size, sha256=digest.hexdigest(),
                mtime=datetime.datetime.fromtimestamp(stat.st_mtime).isoformat(timespec='seconds'))


def stage1_model(cfg, checkpoint: str, device: Optional[str] = None):
    """The stage-1 model of ``cfg`` with ``checkpoint``, configured for the oracle gating only."""
    from mmseg.registry import MODELS

    from ..apis import load_model
    from ..models.segmentor import WeaklySupervisedSegmentor
    model_type = cfg.model.get('type')
    model_class = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    if not (isinstance(model_class, type) and issubclass(model_class, WeaklySupervisedSegmentor)):
        raise PseudoMaskError(
            f'the pseudo-mask step runs the test-time protocol of a WeaklySupervisedSegmentor '
            f'(LPD, CAM, the PBIP-style baselines); this config\'s model is {model_type!r}')
    cfg.model.test_cfg = dict(cfg.model.get('test_cfg') or {}, gating='oracle')
    model = load_model(cfg, checkpoint, device)
    model.set_predict_gatings(('oracle', ))
    return model


_LOADED = {}


def loaded_stage1(config: str, checkpoint: str, cfg_options=None, device=None) -> dict:
    """``{'cfg': ...}`` of the config, and ``'model'`` (:func:`stage1_model`) once the caller has
    built it: one per process for the same config, options, checkpoint file and device, so that
    the splits of one command share one model load."""
    stamp = os.stat(checkpoint).st_mtime_ns if os.path.exists(checkpoint) else None
    key = (config, checkpoint, stamp, json.dumps(cfg_options or {}, sort_keys=True, default=str),
           device)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = {'cfg': load_config(config, cfg_options, init_scope=True)}
    return _LOADED[key]


def pseudo_mask(sample, threshold: Optional[float]) -> np.ndarray:
    """The pseudo-mask (H, W) uint8 of one predicted sample: the argmax of ``seg_logits`` (the
    configured, here oracle, gating), 255 where the winning score is below ``threshold``."""
    mask = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
    if threshold is not None:
        winning = sample.seg_logits.data.max(dim=0).values.float().cpu().numpy()
        mask[winning < threshold] = IGNORE_INDEX
    return mask


def outside_label(mask: np.ndarray, label) -> int:
    """Pixels of ``mask`` holding a tissue class absent from the image label."""
    absent = [c for c, present in enumerate(np.asarray(label).reshape(-1)) if not present]
    return int(np.isin(mask, absent).sum())


class Progress:
    """Progress lines ``pseudo-masks train: 120/480 images (25%), 4.1/s, about 1m28s left``,
    at most one every ``every_s`` seconds (and the last)."""

    def __init__(self, total: int, label: str, write: Callable[[str], None] = print,
                 every_s: float = 10.0):
        self.total, self.label, self.write, self.every_s = total, label, write, every_s
        self.done, self.start, self.last = 0, time.monotonic(), -float('inf')

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float('nan')
        self.write(f'{self.label}: {self.done}/{self.total} images '
                   f'({100 * self.done / max(self.total, 1):.0f}%), {rate:.1f}/s, '
                   f'about {int(left // 60)}m{int(left % 60):02d}s left')


def _json_normalised(obj):
    """``obj`` as it reads back from JSON (tuples as lists, paths as strings)."""
    return json.loads(json.dumps(obj, default=str))


def _model_description(cfg) -> dict:
    head = cfg.model.get('decode_head') or {}
    return _json_normalised(dict(model=cfg.model.get('type'), head=head.get('type'),
                                 prototypes=(head.get('prototypes') or {}).get('type')))


def _summary(layout, counts: np.ndarray, with_class: np.ndarray, outside: int) -> dict:
    """Counts and class frequencies of the manifest from per-value pixel counts (6,)."""
    classes = list(layout.classes)
    labelled = int(counts[:NUM_CLASSES].sum())
    total = labelled + int(counts[NUM_CLASSES])
    return dict(
        counts=dict(pixels=total, labelled_pixels=labelled, ignored_pixels=int(counts[-1]),
                    ignored_fraction=counts[-1] / total if total else None,
                    pixels_outside_image_label=outside),
        class_pixels={c: int(n) for c, n in zip(classes, counts[:NUM_CLASSES])},
        class_frequencies={c: (int(n) / labelled if labelled else None)
                           for c, n in zip(classes, counts[:NUM_CLASSES])},
        images_with_class={c: int(n) for c, n in zip(classes, with_class)})


def write_pseudo_masks(config: str, checkpoint: str, out, split: str = 'train',
                       threshold: Optional[float] = None, cfg_options: Optional[dict] = None,
                       score: bool = False, device: Optional[str] = None,
                       progress: Optional[Callable[[str], None]] = print,
                       source: Optional[dict] = None) -> dict:
    """Write the pseudo-masks of ``split`` into ``out`` (module docstring) and return the manifest.

    Args:
        config, checkpoint: the trained stage-1 model.
        out: output folder (new, empty, or one this same call was interrupted in).
        split: 'train' (gated by the file-name labels) or 'val' (by the val image labels).
        threshold: pixels whose winning score is below it are written 255; None: none are.
        cfg_options: as ``--cfg-options`` (the aliases included, e.g. ``data_root``).
        score: val only: score the masks against the val masks, into the manifest's ``score``.
        device: None: CUDA when available, else CPU.
        progress: where progress lines go (None: nowhere).
        source: recorded as the manifest's ``source`` (e.g. the runner's run directory).

    Raises:
        MaskFolderError: ``out`` holds another run's masks or other files.
        PseudoMaskError: the model is not a WeaklySupervisedSegmentor, the dataset not a
            layout's, or a train image would read a mask.
    """
    from mmengine.runner import Runner
    import torch

    from .quality import score_pseudo_masks
    if score and split != 'val':
        raise ValueError('--score needs --split val: train has no masks to score against')
    if threshold is not None and not float(threshold) >= 0:
        raise ValueError(f'threshold must be a number >= 0, got {threshold!r}')
    started = time.monotonic()
    loaded = loaded_stage1(str(config), str(checkpoint), cfg_options, device)
    cfg = loaded['cfg']
    dataset = build_split_dataset(cfg, split)
    layout = dataset.LAYOUT
    if 'model' not in loaded:
        loaded['model'] = stage1_model(cfg, str(checkpoint), device)
    model = loaded['model']
    record = checkpoint_record(checkpoint)
    identity = _json_normalised(dict(
        config=str(Path(config).resolve()), cfg_options=dict(cfg_options or {}),
        checkpoint_sha256=record['sha256'], split=split,
        data_root=str(Path(dataset.data_root).resolve()), layout=layout.key,
        threshold=None if threshold is None else float(threshold),
        protocol=model.protocol.record()))
    out = Path(out)
    manifest = open_folder(out, identity)
    if manifest is not None:
        if progress:
            progress(f'{out} already holds these pseudo-masks ({manifest["num_images"]} images)')
        if score and manifest.get('score') is None:
            manifest['score'] = score_pseudo_masks(out, dataset.data_root, split, layout)
            finish_folder(out, manifest)
        return manifest

    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    names = [Path(info['img_path']).name for info in infos]
    done = [i for i, name in enumerate(names) if (out / name).is_file()]
    todo = [i for i, name in enumerate(names) if not (out / name).is_file()]
    counts = np.zeros(NUM_CLASSES + 1, dtype=np.int64)
    with_class = np.zeros(NUM_CLASSES, dtype=np.int64)
    outside = 0

    def add(mask: np.ndarray, label) -> None:
        nonlocal counts, with_class, outside
        image_counts = value_counts(mask)
        counts += image_counts
        with_class += image_counts[:NUM_CLASSES] > 0
        outside += outside_label(mask, label)

    for i in done:  # whole PNGs of an interrupted run of the same identity
        add(read_mask(out / names[i]), infos[i]['img_label'])
    if progress and done:
        progress(f'{out}: resuming, {len(done)} of {len(names)} pseudo-masks already written')
    loader = Runner.build_dataloader(dict(
        batch_size=cfg.test_dataloader.get('batch_size', 1),
        num_workers=cfg.test_dataloader.get('num_workers', 0),
        persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset if not done else build_split_dataset(cfg, split, todo))) if todo else ()
    bar = Progress(len(todo), f'pseudo-masks {split}', progress) if progress else None
    palette = dataset.metainfo['palette']
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                name = Path(sample.img_path).name
                mask = pseudo_mask(sample, threshold)
                write_mask(out / name, mask, palette)
                add(mask, sample.metainfo['img_label'])
            if bar:
                bar.update(len(batch['inputs']))

    manifest = dict(
        schema=SCHEMA, complete=True, tool='lpd_bench.stage2.pseudo_masks', identity=identity,
        method=dict(config=identity['config'], **_model_description(cfg)),
        source=_json_normalised(source) if source else None, checkpoint=record,
        split=split, data_root=identity['data_root'], layout=layout.key,
        classes=list(layout.classes), palette=[list(rgb) for rgb in layout.palette],
        gating=dict(gating='oracle', labels=LABEL_SOURCES[split]),
        protocol=identity['protocol'], threshold=identity['threshold'],
        num_images=len(names), resumed_images=len(done),
        **_summary(layout, counts, with_class, outside),
        score=None, created=datetime.datetime.now().isoformat(timespec='seconds'),
        wall_s=round(time.monotonic() - started, 1))
    if score:
        manifest['score'] = score_pseudo_masks(out, dataset.data_root, split, layout)
    finish_folder(out, manifest)
    if progress:
        ignored = manifest['counts']['ignored_pixels']
        progress(f'{len(names)} pseudo-masks of {split} in {out} ({ignored} pixels ignored)' +
                 (f'; mIoU against the val masks {manifest["score"]["mIoU"]:.2f}'
                  if score and manifest['score']['mIoU'] is not None else ''))
    return manifest


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by this module's command and ``lpd-bench pseudo-masks``."""
    from mmengine.config import DictAction
    parser.add_argument('--split', choices=SPLITS, nargs='+', default=['train'],
                        help='train (default; gated by the file-name labels) and/or val (gated '
                        'by the val image labels; its masks can then be scored with --score); '
                        'several splits share one model load and go to --out/<split>')
    parser.add_argument('--threshold', type=float, default=None,
                        help='write 255 (ignore) where the winning score is below this '
                        '(default: no threshold)')
    parser.add_argument('--score', action='store_true',
                        help='val only: mIoU of the written val masks against the val masks, '
                        'stored in the manifest')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, key=value (aliases such as data_root '
                        'included), as tools/test.py')


def check_arguments(parser: argparse.ArgumentParser, args) -> None:
    if args.score and 'val' not in args.split:
        parser.error('--score needs --split val (train has no masks to score against)')
    if len(set(args.split)) < len(args.split):
        parser.error(f'--split names a split twice: {args.split}')


def split_folders(out, splits) -> dict:
    """split -> its output folder: ``out`` itself for one split, ``out/<split>`` for several."""
    return {split: Path(out) if len(splits) == 1 else Path(out) / split for split in splits}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m lpd_bench.stage2.pseudo_masks',
        description='Write the pseudo-masks of a trained stage-1 model (its test-time protocol, '
        'gated by the split\'s image labels) for the second stage.')
    parser.add_argument('config', help='the stage-1 config')
    parser.add_argument('checkpoint', help='the trained stage-1 checkpoint')
    parser.add_argument('--out', required=True, help='output folder (new or empty; with '
                        'several --split, one sub-folder per split in it)')
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    if not os.path.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    run_from_args(args, args.config, args.checkpoint, args.out)
    return 0


def run_from_args(args, config: str, checkpoint: str, out, source: Optional[dict] = None):
    """:func:`write_pseudo_masks` of every ``args.split`` (folders: :func:`split_folders`);
    returns split -> manifest. Known errors end the command with their message."""
    from ..data.validation import DatasetError
    try:
        return {split: write_pseudo_masks(
                    config, checkpoint, folder, split=split, threshold=args.threshold,
                    cfg_options=args.cfg_options, score=args.score and split == 'val',
                    device=args.device, source=source)
                for split, folder in split_folders(out, args.split).items()}
    except (MaskFolderError, DatasetError, PseudoMaskError) as err:
        raise SystemExit(f'pseudo-masks: {err}')


if __name__ == '__main__':
    sys.exit(main())
