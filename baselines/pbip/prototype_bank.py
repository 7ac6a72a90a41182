"""PBIP stage A: a fixed bank of class prototypes from single-label training images.

The frozen image encoder of the model's mask refiner embeds every training image whose label has
exactly one class; spherical k-means (faiss) per class gives ``num_per_class`` unit centroids.
The bank is a plain dict of tensors, lists, strings and numbers (``torch.load(weights_only=True)``).
"""
import copy
import json
import os.path as osp
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from mmengine.utils import ProgressBar

from lpd_bench.data.bcss_meta import TISSUE_CLASSES
from lpd_bench.engine.atomic_json import atomic_file, write_json_atomic
from lpd_bench.engine.hooks import peak_rss_mb
from lpd_bench.models import encoder_resize
from mmseg.registry import DATASETS, MODELS

BANK_COST_STAGE = 'prototype_bank'
#: Transforms dropped from the train pipeline to embed each image once, unaugmented.
RANDOM_TRANSFORM_PREFIXES = ('Random', 'PhotoMetricDistortion')


class PrototypeBankError(ValueError):
    """The data or the config cannot give the requested prototype bank."""


def spherical_kmeans(features: np.ndarray, k: int, seed: int = 0,
                     niter: int = 50) -> np.ndarray:
    """Cluster L2-normalised rows of ``features`` (N, D) into ``k`` unit centroids (k, D)."""
    import faiss  # imported here: only stage A needs it
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < k:
        raise PrototypeBankError(f'spherical k-means needs at least k={k} rows of shape (N, D), '
                                 f'got an array of shape {x.shape}')
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    kmeans = faiss.Kmeans(x.shape[1], k, niter=niter, spherical=True, seed=seed,
                          min_points_per_centroid=1, verbose=False)
    kmeans.train(x)
    centroids = kmeans.centroids.astype(np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)


def single_label_indices(labels: Sequence[Sequence[int]], num_classes: int,
                         num_per_class: int, classes: Sequence[str]) -> List[List[int]]:
    """Indices of images whose multi-hot label has exactly one 1, grouped by class.

    Raises PrototypeBankError when there is none at all, or a class has fewer than
    ``num_per_class`` of them.
    """
    per_class: List[List[int]] = [[] for _ in range(num_classes)]
    for i, label in enumerate(labels):
        label = np.asarray(label)
        if label.shape != (num_classes,):
            raise PrototypeBankError(f'image {i}: img_label has shape {label.shape}, '
                                     f'expected ({num_classes},)')
        if label.sum() == 1:
            per_class[int(label.argmax())].append(i)
    if not any(per_class):
        raise PrototypeBankError(f'none of the {len(labels)} training images has a single-label '
                                 'image-level label: no prototypes can be clustered')
    short = {classes[c]: len(ix) for c, ix in enumerate(per_class) if len(ix) < num_per_class}
    if short:
        raise PrototypeBankError(f'k={num_per_class} prototypes per class need at least '
                                 f'{num_per_class} single-label training images per class; '
                                 f'too few for {short}')
    return per_class


def deterministic_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The train pipeline without its random augmentations."""
    return [t for t in pipeline if not str(t['type']).startswith(RANDOM_TRANSFORM_PREFIXES)]


@torch.no_grad()
def embed_dataset(encoder: torch.nn.Module, preprocessor: torch.nn.Module, dataset,
                  indices: Sequence[int], batch_size: int, device: str, size=None,
                  num_workers: int = 0) -> torch.Tensor:
    """Unit-norm encoder embeddings (len(indices), D) of ``dataset[indices]``, in that order.

    ``size`` (int or (H, W); None: as loaded): the encoder's input size, the config's
    ``refiner_loss.cutout_size``. The normalised images reach it through
    :func:`~lpd_bench.models.encoder_resize.resize_for_encoder`, the function the mask refiner's
    cut-outs go through (bilinear, ``align_corners=False``, antialiased when shrinking).
    """
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, list(indices)), batch_size=batch_size, shuffle=False,
        num_workers=num_workers, collate_fn=pseudo_collate)
    progress = ProgressBar(len(indices))
    out = []
    for batch in loader:
        inputs = preprocessor(batch, training=False)['inputs'].to(device)
        inputs = encoder_resize.resize_for_encoder(inputs, size)
        out.append(F.normalize(encoder(inputs).float(), dim=1).cpu())
        for _ in range(len(inputs)):
            progress.update()
    print()
    return torch.cat(out)


def plain(obj):
    """A config (ConfigDict, tuples) as plain JSON types, safe for ``weights_only`` loading."""
    return json.loads(json.dumps(obj.to_dict() if hasattr(obj, 'to_dict') else obj, default=str))


def training_encoder(cfg: Config, num_per_class: int) -> torch.nn.Module:
    """The refiner's frozen encoder exactly as stage B's runner builds it.

    Without a checkpoint the encoder's weights are random, drawn from the global RNG after the
    layers built before it. So the whole model is built as the runner does it (``randomness``
    seed, then the model, with ``ClusteredPrototypes`` on a placeholder bank of the right shape),
    and its encoder is taken: stage A embeds images with the very encoder stage B trains against.
    """
    model_cfg = copy.deepcopy(cfg.model)
    head = model_cfg.decode_head
    dim = head.prototypes.get('dim', 512)
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng():
        head.prototypes = dict(type='ClusteredPrototypes', num_per_class=num_per_class, dim=dim,
                               bank_path=osp.join(tmp, 'placeholder_bank.pth'))
        write_random_bank(Config(dict(model=model_cfg)), head.prototypes.bank_path)
        set_random_seed(**cfg.get('randomness', {}))
        model = MODELS.build(model_cfg)
    return model.decode_head.refiner_loss.encoder


def build_prototype_bank(cfg: Config, num_per_class: int = 3, seed: int = 0,
                         batch_size: int = 32, niter: int = 50, device: Optional[str] = None,
                         num_workers: int = 0) -> dict:
    """Run PBIP stage A for ``cfg`` (a model + train data config); return the bank dict."""
    start = time.perf_counter()
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    refiner = cfg.model.decode_head.get('refiner_loss')
    if not refiner or 'encoder' not in refiner:
        raise PrototypeBankError('PBIP stage A embeds images with the frozen encoder of '
                                 'model.decode_head.refiner_loss.encoder, which this config does '
                                 f'not set (refiner_loss={refiner!r})')
    encoder_cfg = refiner['encoder']
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    dataset_cfg.pipeline = deterministic_pipeline(dataset_cfg.pipeline)
    dataset = DATASETS.build(dataset_cfg)
    num_classes = int(cfg.model.decode_head.num_classes)
    classes = list(dataset.metainfo['classes'])[:num_classes]
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    per_class = single_label_indices([info['img_label'] for info in infos], num_classes,
                                     num_per_class, classes)
    print_log(f'prototype bank: {sum(map(len, per_class))} single-label images of {len(dataset)} '
              f'({dict(zip(classes, map(len, per_class)))}), k={num_per_class}, seed={seed}',
              logger='current')

    encoder = training_encoder(cfg, num_per_class).to(device).eval()
    preprocessor = MODELS.build(cfg.model.data_preprocessor).to(device)
    flat = [i for ix in per_class for i in ix]
    embed_start = time.perf_counter()
    feats = embed_dataset(encoder, preprocessor, dataset, flat, batch_size, device,
                          refiner.get('cutout_size'), num_workers)
    embed_s = time.perf_counter() - embed_start
    centroids, offset = [], 0
    for c, ix in enumerate(per_class):
        centroids.append(spherical_kmeans(feats[offset:offset + len(ix)].numpy(), num_per_class,
                                          seed=seed, niter=niter))
        offset += len(ix)
    wall = time.perf_counter() - start
    return {
        'prototypes': torch.from_numpy(np.concatenate(centroids)),
        'num_classes': num_classes,
        'num_per_class': num_per_class,
        'classes': classes,
        'images': {classes[c]: [infos[i]['img_path'] for i in ix]
                   for c, ix in enumerate(per_class)},
        'encoder': plain(encoder_cfg),
        'seed': seed,
        'wall_time_s': wall,
        'images_per_s': len(flat) / max(embed_s, 1e-9),
        'peak_rss_mb': peak_rss_mb(),
        'peak_cuda_mb': (torch.cuda.max_memory_allocated() / 2**20
                         if torch.device(device).type == 'cuda' else None),
    }


def bank_cost(bank: dict, bank_path: str) -> dict:
    """The bank's cost as one stage of the run result contract (ARCHITECTURE.md)."""
    return {'name': BANK_COST_STAGE, 'wall_s': bank['wall_time_s'],
            'peak_rss_mb': bank['peak_rss_mb'], 'peak_cuda_mb': bank['peak_cuda_mb'],
            'images': sum(map(len, bank['images'].values())),
            'images_per_s': bank['images_per_s'], 'num_per_class': bank['num_per_class'],
            'seed': bank['seed'], 'bank': osp.abspath(bank_path)}


def save_prototype_bank(bank: dict, path: str) -> str:
    """Write ``bank`` to ``path`` and its cost stage to ``<path>.cost.json``, both atomically.

    Returns the cost JSON path.
    """
    with atomic_file(path, 'wb') as f:
        torch.save(bank, f)
    cost_path = path + '.cost.json'
    write_json_atomic(cost_path, bank_cost(bank, path))
    return cost_path


def load_prototype_bank(path: str) -> Dict:
    """Load a bank written by ``save_prototype_bank``; clear error when the file is missing."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'prototype bank {path!r} does not exist; build it first (PBIP stage A) with '
            f'`python -m baselines.pbip.build_bank CONFIG --out {path}` (same config as training)')
    bank = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(bank, dict) or 'prototypes' not in bank:
        raise PrototypeBankError(f'{path!r} is not a prototype bank (no "prototypes" entry)')
    return bank


def random_bank(num_classes: int, num_per_class: int, dim: int, seed: int = 0,
                classes: Optional[Sequence[str]] = None) -> dict:
    """A bank of random unit rows (C*k, dim) in the format of :func:`build_prototype_bank`
    (prototypes, num_classes, num_per_class, classes, seed; no images, no cost); ``classes``
    names the classes (default BCSS-WSSS's)."""
    gen = torch.Generator().manual_seed(seed)
    vectors = F.normalize(torch.randn(num_classes * num_per_class, dim, generator=gen), dim=1)
    names = TISSUE_CLASSES if classes is None else classes
    return {'prototypes': vectors, 'num_classes': num_classes, 'num_per_class': num_per_class,
            'classes': list(names[:num_classes]), 'seed': seed}


def config_class_names(cfg: Config) -> Optional[Tuple[str, ...]]:
    """The tissue classes of the layout ``cfg``'s train dataset reads (BCSS-WSSS or
    LUAD-HistoSeg); None without a train dataloader or for a type without a layout."""
    from lpd_bench.apis import dataset_layout
    loader = cfg.get('train_dataloader')
    layout = None if loader is None else dataset_layout(loader['dataset'])
    return None if layout is None else layout.tissue_classes


def write_random_bank(cfg: Config, path: str, seed: int = 0) -> str:
    """Stage A's stand-in: write (atomically) a :func:`random_bank` of the shape ``cfg``'s
    ``ClusteredPrototypes`` expect (``num_per_class``, default 3; ``dim``, default 512) to
    ``path``, for what needs a bank but not a clustered one (the bench, config tests), its
    classes named after the config's dataset (:func:`config_class_names`). Returns ``path``."""
    head = cfg.model.decode_head
    prototypes = head.prototypes
    bank = random_bank(int(head.num_classes), int(prototypes.get('num_per_class', 3)),
                       int(prototypes.get('dim', 512)), seed, config_class_names(cfg))
    with atomic_file(path, 'wb') as f:
        torch.save(bank, f)
    return str(path)
