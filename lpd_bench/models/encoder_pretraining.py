"""A frozen encoder for the CPU preset's refiner that carries meaning without downloaded weights.

The paper's refiner embeds cut-outs with an ImageNet-pretrained Swin-T; the CPU preset has no
downloaded weights, so its ``PatchMLPEncoder`` was random (a random-feature encoder of colour and
texture). This module pretrains that same backbone ONCE, on the train split of the dataset the run
trains on, with a weak-label objective, and caches the result like the synthetic data:

- **Data**: the train images whose file-name label has ONE class (``[1000]`` etc.; no mask is
  ever read). Each image is read as the model reads it (BGR, normalised with
  :data:`~lpd_bench.data.bcss_meta.MEAN_BGR_255` / ``STD_BGR_255``, as the configs'
  ``SegDataPreProcessor``) and brought once to ``source_size`` px (64) by
  :func:`~lpd_bench.models.encoder_resize.resize_for_encoder`.
- **Views**: square random crops whose side is a share ``crop_scale`` (0.5 to 1) of the image,
  resized to the encoder's input size (the refiner's ``cutout_size``, 16 px) by
  ``resize_for_encoder``, as the refiner's cut-outs are; random flips / 90-degree rotations; a
  stain jitter (``stain_jitter`` = (s, a): each view's normalised channels scaled by 1 + U(-a, a)
  and shifted by N(0, s^2), so that a slide's stain is not the cue); with probability
  ``mask_prob`` multiplied by a random blob mask (4 x 4 noise upsampled and
  thresholded to keep 25-100 % of the pixels), so that the encoder also sees inputs shaped like
  the refiner's foreground/background cut-outs (an image times a hard mask). Classes are sampled
  uniformly (then an image of that class), so rare classes count as much as common ones.
- **Objective**: a linear classifier on the average-pooled last stage (what
  ``FrozenImageEncoder`` pools), cross-entropy against the image's class; AdamW; ``iters`` steps
  of ``batch_size`` crops. Optionally (``multi_label_weight`` > 0) plus a multi-label BCE on whole
  multi-label images (off by default).
- **Determinism**: one torch generator seeded with ``seed`` draws everything; the run is single-
  threaded with ``torch.use_deterministic_algorithms``, so the weights are bit-identical for the
  same inputs on the same machine; the caller's RNG, thread count and determinism flag are
  restored afterwards.

:func:`pretrained_encoder_path` caches the weights under ``<cache_dir>/encoders/`` (the cache of
:func:`lpd_bench.data.synthetic.cache_dir`), keyed by a hash of the backbone config, the encoder
input size, the data (the sha256 of the set's ``manifest.json``, else the train file names and
sizes), every pretraining setting and :data:`CODE_VERSION`; it is built on first use (under a
file lock, written to a temp file then renamed). The file is an mmengine-style checkpoint
``{'state_dict': <backbone state dict>, 'meta': {...}}`` that ``FrozenImageEncoder(checkpoint=...)``
loads. The registered backbone :class:`SyntheticPretrainedPatchMLP` (a ``PatchMLPEncoder`` whose
``init_weights`` loads those weights, building them if needed) lets a config ask for it without a
path: ``data_root`` None is the default synthetic set of its ``layout`` ('bcss', the default, as
for ``BCSSWSSSDataset``, or 'luad', as for ``LUADHistoSegDataset``). The train labels are read
from the names in the folder's own layout (``lpd_bench.data.validation.detect_layout``).

The pretraining never reads a mask or any val/test image. :func:`evaluate_encoder` measures it
afterwards on the val split (crops whose mask is one tissue class: evaluation only) and
:func:`linear_probe_accuracy` compares encoders with a linear probe (tools/pretrain_cpu_encoder.py,
reports/cpu_encoder.md).
"""
import contextlib
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from PIL import Image

from ..data.bcss_meta import BACKGROUND_INDEX, MEAN_BGR_255, NUM_TISSUE_CLASSES, STD_BGR_255
from .encoder_resize import encoder_size, resize_for_encoder
from .patch_mlp_encoder import PatchMLPEncoder

#: Bump whenever the pretraining would give other weights for the same settings (names the cache).
CODE_VERSION = 2
#: Default pretraining settings (:func:`pretrain_frozen_encoder`).
DEFAULTS = dict(iters=600, seed=0, batch_size=128, lr=3e-3, weight_decay=1e-4, source_size=64,
                crop_scale=(0.5, 1.0), mask_prob=0.5, stain_jitter=(0.15, 0.1),
                multi_label_weight=0.0)
#: Sub-folder of the cache dir holding the pretrained encoders.
CACHE_SUBDIR = 'encoders'
#: Crops per single-label train image of the linear probe's (fixed) training set.
PROBE_CROPS_PER_IMAGE = 8
#: Sides (shares of the image side) and stride (share) of the val evaluation crops.
EVAL_CROP_SCALES = (0.5, 0.75, 1.0)
EVAL_CROP_STRIDE = 0.125


# ----------------------------------------------------------------------------- data


def resolve_data_root(data_root, layout: str = 'bcss') -> Path:
    """``data_root`` as a Path; None is the default synthetic set of ``layout`` (built on first
    use), as for ``BCSSWSSSDataset`` ('bcss') and ``LUADHistoSegDataset`` ('luad')."""
    if data_root is None:
        from ..data.synthetic import default_synthetic_root
        return Path(default_synthetic_root(layout=layout))
    return Path(data_root)


def _read_bgr(path) -> np.ndarray:
    """(H, W, 3) uint8 BGR, as mmcv's ``LoadImageFromFile`` (cv2) gives it."""
    return np.ascontiguousarray(np.asarray(Image.open(path).convert('RGB'))[..., ::-1])


def normalise_bgr(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) BGR 0..255 -> normalised as the configs' ``SegDataPreProcessor`` does."""
    mean = torch.tensor(MEAN_BGR_255, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD_BGR_255, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() - mean) / std


def load_sources(paths: Sequence, source_size: int) -> torch.Tensor:
    """(N, 3, source_size, source_size) normalised images, each brought to ``source_size`` by
    :func:`resize_for_encoder` (one image at a time, so images of any size mix)."""
    out = []
    for path in paths:
        image = torch.from_numpy(_read_bgr(path)).permute(2, 0, 1)[None]
        out.append(resize_for_encoder(normalise_bgr(image), source_size))
    return torch.cat(out) if out else torch.zeros(0, 3, source_size, source_size)


def train_images(data_root, purpose: str = 'encoder pretraining') -> tuple:
    """(paths, multi-hot labels (N, 4) int64) of the train split, sorted by name; the labels
    are read from the names by the parser of the folder's layout (``detect_layout``: BCSS-WSSS
    ``...[1101].png`` or LUAD-HistoSeg ``...-[1 1 0 1].png``), in that layout's class order.

    Raises:
        FileNotFoundError: the train folder holds no ``*.png`` (the message names the folder and
            ``purpose``, what needed the images).
    """
    from ..data.validation import detect_layout, split_dir
    folder = split_dir(Path(data_root), 'train')
    paths = sorted(folder.glob('*.png'))
    if not paths:
        raise FileNotFoundError(f'{purpose}: no *.png image in the train split folder {folder} '
                                f'(data_root {data_root})')
    parse = detect_layout(data_root).layout.parse_train_label
    labels = np.stack([parse(p) for p in paths])
    return paths, labels


def single_label_sources(data_root, source_size: int) -> tuple:
    """(images (N, 3, S, S) normalised, class (N,) int64) of the single-label train images.

    Raises:
        ValueError: a tissue class has no single-label train image (its class could not be
            learnt from crops; the message names the class and the counts).
    """
    from ..data.validation import detect_layout
    paths, labels = train_images(data_root)
    names = detect_layout(data_root).layout.tissue_classes
    single = labels.sum(1) == 1
    classes = labels[single].argmax(1)
    counts = np.bincount(classes, minlength=NUM_TISSUE_CLASSES)
    if (counts == 0).any():
        missing = [names[c] for c in np.flatnonzero(counts == 0)]
        raise ValueError(
            f'encoder pretraining: the train split of {data_root} has no single-label image of '
            f'{", ".join(missing)} (single-label images per class: '
            f'{dict(zip(names, counts.tolist()))}); the weak-label objective needs at '
            'least one image labelled with only that class')
    kept = [p for p, s in zip(paths, single) if s]
    return load_sources(kept, source_size), torch.from_numpy(classes)


def multi_label_sources(data_root, source_size: int) -> tuple:
    """(images, multi-hot labels (N, 4) float) of the train images with more than one class."""
    paths, labels = train_images(data_root)
    multi = labels.sum(1) > 1
    kept = [p for p, m in zip(paths, multi) if m]
    return load_sources(kept, source_size), torch.from_numpy(labels[multi]).float()


# ----------------------------------------------------------------------------- views


def blob_masks(n: int, size, gen: torch.Generator) -> torch.Tensor:
    """(n, 1, H, W) float 0/1 masks: 4 x 4 uniform noise upsampled (bilinear) and thresholded at
    a random quantile, so each keeps a random 25-100 % of its pixels in a few blobs."""
    h, w = encoder_size(size)
    noise = F.interpolate(torch.rand(n, 1, 4, 4, generator=gen), size=(h, w), mode='bilinear',
                          align_corners=False)
    keep = 0.25 + 0.75 * torch.rand(n, generator=gen)
    flat = noise.flatten(1)
    threshold = flat.sort(dim=1).values[
        torch.arange(n), ((1 - keep) * (flat.shape[1] - 1)).round().long()]
    return (noise >= threshold.view(n, 1, 1, 1)).float()


def random_flips(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each (N, C, S, S) image flipped horizontally / vertically and rotated by 90 degrees, each
    with probability 1/2 (the training pipeline's augmentation, on square crops)."""
    n = x.shape[0]
    flip_h, flip_v, rot = (torch.rand(3, n, generator=gen) < 0.5)
    x = torch.where(flip_h.view(n, 1, 1, 1), x.flip(-1), x)
    x = torch.where(flip_v.view(n, 1, 1, 1), x.flip(-2), x)
    return torch.where(rot.view(n, 1, 1, 1), x.transpose(-1, -2), x)


def random_crops(images: torch.Tensor, index: torch.Tensor, side: int,
                 gen: torch.Generator) -> torch.Tensor:
    """(len(index), 3, side, side) crops of ``images[index]`` at random positions."""
    s = images.shape[-1]
    ys = torch.randint(0, s - side + 1, (len(index), ), generator=gen)
    xs = torch.randint(0, s - side + 1, (len(index), ), generator=gen)
    return torch.stack([images[i, :, y:y + side, x:x + side]
                        for i, y, x in zip(index.tolist(), ys.tolist(), xs.tolist())])


def stain_jittered(views: torch.Tensor, jitter, gen: torch.Generator) -> torch.Tensor:
    """Each (N, 3, H, W) normalised view's channels scaled by 1 + U(-a, a) and shifted by
    N(0, s^2) (``jitter`` = (s, a); (0, 0): unchanged)."""
    shift, scale = (float(v) for v in jitter)
    n = views.shape[0]
    factors = 1 + scale * (2 * torch.rand(n, views.shape[1], 1, 1, generator=gen) - 1)
    offsets = shift * torch.randn(n, views.shape[1], 1, 1, generator=gen)
    return views * factors + offsets


def training_views(images: torch.Tensor, classes: torch.Tensor, batch_size: int, size,
                   crop_scale, mask_prob: float, gen: torch.Generator,
                   stain_jitter=(0.0, 0.0)) -> tuple:
    """One batch of (views (B, 3, size), labels (B,)): class-balanced random crops (one crop side
    per batch), resized to the encoder's ``size``, flipped/rotated, stain-jittered, some masked
    (after the jitter: masked pixels are exactly 0, as in the refiner's cut-outs)."""
    num_classes = int(classes.max()) + 1
    by_class = [torch.nonzero(classes == c)[:, 0] for c in range(num_classes)]
    labels = torch.randint(0, num_classes, (batch_size, ), generator=gen)
    picks = torch.rand(batch_size, generator=gen)
    index = torch.stack([by_class[c][int(u * len(by_class[c]))]
                         for c, u in zip(labels.tolist(), picks.tolist())])
    s = images.shape[-1]
    lo = max(1, int(round(crop_scale[0] * s)))
    hi = max(lo, int(round(crop_scale[1] * s)))
    side = int(torch.randint(lo, hi + 1, (1, ), generator=gen))
    views = random_flips(resize_for_encoder(random_crops(images, index, side, gen), size), gen)
    views = stain_jittered(views, stain_jitter, gen)
    masked = torch.rand(batch_size, generator=gen) < mask_prob
    masks = blob_masks(batch_size, size, gen)
    views = torch.where(masked.view(-1, 1, 1, 1), views * masks, views)
    return views, labels


# ----------------------------------------------------------------------------- pretraining


def backbone_config(encoder_cfg: dict) -> dict:
    """The ``PatchMLPEncoder`` config (``type`` set to it) of a frozen-encoder config: the
    ``backbone`` of a ``FrozenImageEncoder`` config, or a backbone config itself (a
    ``SyntheticPretrainedPatchMLP`` one counts as its ``PatchMLPEncoder``)."""
    cfg = dict(encoder_cfg.get('backbone', encoder_cfg))
    kind = cfg.pop('type', 'PatchMLPEncoder')
    if kind not in ('PatchMLPEncoder', SyntheticPretrainedPatchMLP.__name__):
        raise ValueError(f'encoder pretraining: supports a PatchMLPEncoder backbone, got {kind!r}')
    for key in PRETRAIN_ONLY_KEYS:
        cfg.pop(key, None)
    defaults = dict(in_channels=3, patch_size=4, embed_dims=(64, 128), bias_std=0.1)
    cfg = {**defaults, **cfg}
    cfg['embed_dims'] = [int(d) for d in cfg['embed_dims']]
    return dict(type='PatchMLPEncoder', **cfg)


def pooled_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, C_last): the average-pooled last stage, what ``FrozenImageEncoder`` pools."""
    return backbone(x)[-1].mean(dim=(2, 3))


@contextlib.contextmanager
def deterministic_cpu(seed: int, threads: int = 1):
    """``threads`` intra-op threads (default one), deterministic algorithms, the global RNG
    seeded; all restored on exit."""
    caller_threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(caller_threads)
            torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)


def pretrain_frozen_encoder(encoder_cfg: dict, data_root=None, iters: int = DEFAULTS['iters'],
                            seed: int = DEFAULTS['seed'],
                            batch_size: int = DEFAULTS['batch_size'], cutout_size=16,
                            lr: float = DEFAULTS['lr'],
                            weight_decay: float = DEFAULTS['weight_decay'],
                            source_size: int = DEFAULTS['source_size'],
                            crop_scale=DEFAULTS['crop_scale'],
                            mask_prob: float = DEFAULTS['mask_prob'],
                            stain_jitter=DEFAULTS['stain_jitter'],
                            multi_label_weight: float = DEFAULTS['multi_label_weight'],
                            progress: Optional[Callable[[str], None]] = None,
                            info: Optional[dict] = None) -> dict:
    """Pretrain the frozen encoder's backbone on the train split of ``data_root``; return its
    state dict (the backbone's own keys, as ``FrozenImageEncoder`` loads them).

    Args:
        encoder_cfg: the refiner's ``FrozenImageEncoder`` config (its ``backbone`` is used) or
            the backbone config; a ``PatchMLPEncoder``.
        data_root: dataset in the BCSS-WSSS or LUAD-HistoSeg layout (None: the default
            BCSS-WSSS synthetic set).
        iters, batch_size, lr, weight_decay: AdamW steps, crops per step, its settings.
        seed: seeds the backbone's initialisation and every random draw.
        cutout_size: the encoder's input size (the refiner's ``cutout_size``).
        source_size, crop_scale, mask_prob, stain_jitter, multi_label_weight: see the module
            docstring.
        progress: called with a line of text now and then.
        info: if given, filled with the run's numbers (time, final train accuracy, counts).
    """
    size = encoder_size(cutout_size)
    if size is None:
        raise ValueError('encoder pretraining: cutout_size (the encoder input size) is required')
    say = progress or (lambda line: None)
    started = time.perf_counter()
    root = resolve_data_root(data_root)
    with deterministic_cpu(seed):
        images, classes = single_label_sources(root, source_size)
        if multi_label_weight > 0:
            multi_images, multi_labels = multi_label_sources(root, source_size)
        backbone = MODELS.build(backbone_config(encoder_cfg))
        backbone.init_weights()
        head = nn.Linear(backbone.embed_dims[-1], NUM_TISSUE_CLASSES)
        params = list(backbone.parameters()) + list(head.parameters())
        optim = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        say(f'encoder pretraining: {len(classes)} single-label train images of {root} '
            f'(per class {torch.bincount(classes, minlength=NUM_TISSUE_CLASSES).tolist()}), '
            f'{iters} iterations of {batch_size} crops at {size[0]}x{size[1]} px')
        correct = seen = 0
        backbone.train()
        for it in range(iters):
            lr_now = lr * 0.5 * (1 + np.cos(np.pi * it / max(1, iters)))  # cosine decay
            for group in optim.param_groups:
                group['lr'] = lr_now
            views, labels = training_views(images, classes, batch_size, size, crop_scale,
                                           mask_prob, gen, stain_jitter)
            logits = head(pooled_features(backbone, views))
            loss = F.cross_entropy(logits, labels)
            if multi_label_weight > 0 and len(multi_labels):
                pick = torch.randint(0, len(multi_labels), (max(1, batch_size // 4), ),
                                     generator=gen)
                whole = random_flips(resize_for_encoder(multi_images[pick], size), gen)
                multi_logits = head(pooled_features(backbone, whole))
                loss = loss + multi_label_weight * F.binary_cross_entropy_with_logits(
                    multi_logits, multi_labels[pick])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            if it >= iters - max(1, iters // 10):  # accuracy over the last tenth of the steps
                correct += int((logits.argmax(1) == labels).sum())
                seen += len(labels)
            if (it + 1) % max(1, iters // 5) == 0 or it + 1 == iters:
                say(f'  iter {it + 1}/{iters}  loss {float(loss.detach()):.4f}  '
                    f'{time.perf_counter() - started:.1f} s')
        backbone.eval()
        state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
        head_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    if info is not None:
        info.update(seconds=round(time.perf_counter() - started, 2),
                    train_crop_accuracy=round(correct / max(1, seen), 4),
                    single_label_images=torch.bincount(
                        classes, minlength=NUM_TISSUE_CLASSES).tolist(),
                    head=head_state)
    return state


# ----------------------------------------------------------------------------- evaluation


def eval_crops(data_root, split: str = 'val', source_size: int = DEFAULTS['source_size'],
               size=16, scales=EVAL_CROP_SCALES, stride: float = EVAL_CROP_STRIDE) -> tuple:
    """(crops (N, 3, size) normalised, class (N,)) of a split with masks: every crop of a grid
    (sides ``scales`` of the image, stride ``stride`` of it) whose mask is ONE tissue class
    (no background), cut from the image at ``source_size`` and resized like the training views.
    Evaluation only: these masks are never used for pretraining."""
    from ..data.validation import split_dir
    folder = split_dir(Path(data_root), split)
    crops, labels = [], []
    for path in sorted((folder / 'img').glob('*.png')):
        mask = np.asarray(Image.open(folder / 'mask' / path.name))
        image = load_sources([path], source_size)[0]
        ratio = mask.shape[0] / source_size
        step = max(1, int(round(stride * source_size)))
        for scale in scales:
            side = int(round(scale * source_size))
            for y in range(0, source_size - side + 1, step):
                for x in range(0, source_size - side + 1, step):
                    box = mask[int(round(y * ratio)):int(round((y + side) * ratio)),
                               int(round(x * ratio)):int(round((x + side) * ratio))]
                    values = np.unique(box)
                    if len(values) == 1 and values[0] != BACKGROUND_INDEX:
                        crops.append(resize_for_encoder(
                            image[None, :, y:y + side, x:x + side], size))
                        labels.append(int(values[0]))
    if not crops:
        return torch.zeros(0, 3, *encoder_size(size)), torch.zeros(0, dtype=torch.long)
    return torch.cat(crops), torch.tensor(labels)


def probe_train_crops(data_root, source_size: int = DEFAULTS['source_size'], size=16,
                      crop_scale=DEFAULTS['crop_scale'], per_image: int = PROBE_CROPS_PER_IMAGE,
                      seed: int = 1234) -> tuple:
    """A fixed set of (crops, class) from the single-label train images (the probe's train set):
    ``per_image`` random crops per image, sides in ``crop_scale``, drawn with ``seed``."""
    images, classes = single_label_sources(resolve_data_root(data_root), source_size)
    gen = torch.Generator().manual_seed(seed)
    s = images.shape[-1]
    crops, labels = [], []
    for _ in range(per_image):
        side = int(torch.randint(int(round(crop_scale[0] * s)), int(round(crop_scale[1] * s)) + 1,
                                 (1, ), generator=gen))
        index = torch.arange(len(classes))
        crops.append(resize_for_encoder(random_crops(images, index, side, gen), size))
        labels.append(classes)
    return torch.cat(crops), torch.cat(labels)


def mask_views(views: torch.Tensor, seed: int = 99) -> torch.Tensor:
    """``views`` each times a fixed random blob mask (:func:`blob_masks`, drawn with ``seed``):
    inputs shaped like the refiner's cut-outs."""
    gen = torch.Generator().manual_seed(seed)
    return views * blob_masks(len(views), tuple(views.shape[-2:]), gen)


@torch.no_grad()
def features(backbone: nn.Module, views: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    backbone.eval()
    return torch.cat([pooled_features(backbone, part) for part in views.split(chunk)]) \
        if len(views) else torch.zeros(0, backbone.embed_dims[-1])


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int,
                     weight_decay: float = 1e-3, steps: int = 100) -> Callable:
    """A multinomial logistic regression on standardised features (full-batch L-BFGS, L2
    ``weight_decay``); returns ``predict(x) -> class``."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    x = (train_x - mean) / std
    linear = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optim = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=steps,
                              line_search_fn='strong_wolfe')

    def closure():
        optim.zero_grad()
        loss = F.cross_entropy(linear(x), train_y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optim.step(closure)
    return lambda z: linear((z - mean) / std).argmax(1)


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """Overall and class-balanced (mean per-class recall) accuracy, and the crop count."""
    recalls = [float((pred[target == c] == c).float().mean()) for c in target.unique().tolist()]
    return dict(accuracy=round(float((pred == target).float().mean()), 4) if len(target) else None,
                balanced_accuracy=round(float(np.mean(recalls)), 4) if recalls else None,
                crops=int(len(target)))


def linear_probe_accuracy(backbone: nn.Module, train: tuple, test: tuple,
                          feature_fn: Optional[Callable] = None) -> dict:
    """Linear-probe accuracy of ``backbone``'s pooled features (or ``feature_fn(views)``):
    fitted on ``train`` (views, class), measured on ``test`` (views, class)."""
    fn = feature_fn or (lambda v: features(backbone, v))
    with deterministic_cpu(0):
        predict = fit_linear_probe(fn(train[0]), train[1], NUM_TISSUE_CLASSES)
        with torch.no_grad():
            return accuracy(predict(fn(test[0])), test[1])


@torch.no_grad()
def cosine_geometry(embed: Callable, train: tuple, test: tuple) -> dict:
    """How the refiner would see an encoder's embeddings ``embed(views)`` (its InfoNCE compares
    them with prototypes by cosine, with no standardisation): accuracy of the nearest class
    centroid by cosine (centroids: mean unit embedding of each class's ``train`` views) on
    ``test``, and the mean cosine between ``test`` embeddings of the same and of different
    classes (both near 1: the embeddings share one direction and differ little)."""
    tr = F.normalize(embed(train[0]), dim=1)
    te = F.normalize(embed(test[0]), dim=1)
    centroids = F.normalize(torch.stack([tr[train[1] == c].mean(0)
                                         for c in range(NUM_TISSUE_CLASSES)]), dim=1)
    out = accuracy((te @ centroids.t()).argmax(1), test[1])
    cos = te @ te.t()
    same = test[1][:, None] == test[1][None, :]
    off_diagonal = ~torch.eye(len(te), dtype=torch.bool)
    out['cosine_same_class'] = round(float(cos[same & off_diagonal].mean()), 4)
    out['cosine_other_class'] = round(float(cos[~same].mean()), 4)
    return out


def colour_statistics(views: torch.Tensor) -> torch.Tensor:
    """(N, 6) per-channel mean and standard deviation of each view: a colour-only baseline."""
    flat = views.flatten(2)
    return torch.cat([flat.mean(2), flat.std(2)], 1)


def evaluate_encoder(backbone: nn.Module, head_state: Optional[dict], data_root=None,
                     cutout_size=16, source_size: int = DEFAULTS['source_size']) -> dict:
    """Val numbers of a pretrained backbone: the pretraining head's accuracy on the val crops
    (:func:`eval_crops`), plain and masked (:func:`mask_views`)."""
    root = resolve_data_root(data_root)
    views, labels = eval_crops(root, 'val', source_size, cutout_size)
    out = {}
    if head_state is not None and len(labels):
        head = nn.Linear(backbone.embed_dims[-1], NUM_TISSUE_CLASSES)
        head.load_state_dict(head_state)
        with torch.no_grad():
            out['val_crop'] = accuracy(head(features(backbone, views)).argmax(1), labels)
            out['val_crop_masked'] = accuracy(
                head(features(backbone, mask_views(views))).argmax(1), labels)
    return out


# ----------------------------------------------------------------------------- cache


def data_fingerprint(data_root) -> str:
    """What identifies the training data: sha256 of ``manifest.json`` when the set has one
    (the synthetic sets), else of the sorted train file names with their sizes."""
    from ..data.validation import MANIFEST_NAME, split_dir
    root = Path(data_root)
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        return 'manifest:' + hashlib.sha256(manifest.read_bytes()).hexdigest()
    listing = '\n'.join(f'{p.name} {p.stat().st_size}'
                        for p in sorted(split_dir(root, 'train').glob('*.png')))
    return 'train-files:' + hashlib.sha256(listing.encode()).hexdigest()


def merged_settings(defaults: dict, overrides: dict, what: str, pairs=()) -> dict:
    """``defaults`` with ``overrides`` (unknown keys are a TypeError naming ``what``), the keys
    in ``pairs`` made lists of floats (JSON-normalised, so equal settings hash equally)."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise TypeError(f'{what}: unknown settings {sorted(unknown)}; known: {sorted(defaults)}')
    settings = {**defaults, **overrides}
    for key in pairs:
        settings[key] = [float(v) for v in settings[key]]
    return settings


def pretrain_settings(**overrides) -> dict:
    """:data:`DEFAULTS` with ``overrides`` (unknown keys are an error), JSON-normalised."""
    return merged_settings(DEFAULTS, overrides, 'encoder pretraining',
                           ('crop_scale', 'stain_jitter'))


def cache_key(encoder_cfg: dict, data_root, cutout_size, settings: dict) -> dict:
    """Everything the cached weights depend on (hashed into the file name)."""
    return dict(backbone=backbone_config(encoder_cfg), cutout_size=list(encoder_size(cutout_size)),
                data=data_fingerprint(data_root), settings=settings, code_version=CODE_VERSION)


def encoder_cache_dir() -> Path:
    from ..data.synthetic import cache_dir
    return cache_dir() / CACHE_SUBDIR


def pretrained_encoder_path(encoder_cfg: dict, data_root=None, cutout_size=16, build: bool = True,
                            progress: Optional[Callable[[str], None]] = None,
                            layout: str = 'bcss', **settings) -> Path:
    """Path of the cached pretrained backbone for these inputs, pretrained first if missing.

    ``<cache_dir>/encoders/patchmlp-<data folder>-it<iters>-seed<seed>-<hash>.pth``, the hash
    over :func:`cache_key`. Built under a lock file (one process pretrains, the others wait and
    reuse it), written to a temp file and renamed. ``build=False`` only returns the path.
    ``layout``: of the default synthetic set that ``data_root`` None stands for (not in the key:
    the two sets differ in their data). ``settings``: overrides of :data:`DEFAULTS`.
    """
    root = resolve_data_root(data_root, layout)
    settings = pretrain_settings(**settings)
    key = cache_key(encoder_cfg, root, cutout_size, settings)
    path = cache_file(encoder_cache_dir(), 'patchmlp', root, settings, key)
    if not build or path.is_file():
        return path

    def pretrain() -> dict:
        info = {}
        state = pretrain_frozen_encoder(encoder_cfg, root, cutout_size=cutout_size,
                                        progress=progress, info=info, **settings)
        head_state = info.pop('head')
        backbone = MODELS.build(backbone_config(encoder_cfg))
        backbone.load_state_dict(state)
        try:
            info['evaluation'] = evaluate_encoder(backbone, head_state, root, cutout_size,
                                                  settings['source_size'])
        except Exception as error:  # a set without a val split with masks: no evaluation
            info['evaluation'] = {'skipped': f'{type(error).__name__}: {error}'}
        meta = dict(key=json.loads(json.dumps(key)), data_root=str(root), **info,
                    note='CPU-preset frozen encoder pretrained on the train split '
                    '(lpd_bench.models.encoder_pretraining)')
        return dict(state_dict=state, head=head_state, meta=meta)

    return build_once(path, pretrain, progress, 'encoder pretraining')


def cache_file(folder: Path, prefix: str, root: Path, settings: dict, key: dict) -> Path:
    """``<folder>/<prefix>-<data folder>-it<iters>-seed<seed>-<hash of key>.pth``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    tag = re.sub(r'[^A-Za-z0-9._-]+', '_', Path(root).resolve().name)[:80] or 'data'
    return folder / f'{prefix}-{tag}-it{settings["iters"]}-seed{settings["seed"]}-{digest[:16]}.pth'


def build_once(path: Path, build: Callable[[], dict],
               progress: Optional[Callable[[str], None]] = None, what: str = 'pretraining') -> Path:
    """``path``, written by ``torch.save(build())`` unless it exists: under a lock file (one
    process builds, the others wait and reuse it), to a temp file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path.with_name(path.name + '.lock')):
        if path.is_file():  # another process built it while we waited
            return path
        payload = build()
        from ..engine.atomic_json import atomic_file
        with atomic_file(path, 'wb') as f:
            torch.save(payload, f)
        if progress is not None:
            progress(f'{what}: wrote {path}')
    return path


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive ``flock`` on ``path`` (created) while inside."""
    import fcntl
    with open(path, 'a') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pretrained(path) -> dict:
    """The cached file's dict (``state_dict``, ``head``, ``meta``), loaded with
    ``weights_only=True``."""
    return torch.load(path, map_location='cpu', weights_only=True)


# ----------------------------------------------------------------------------- config hook

#: Keys of :class:`SyntheticPretrainedPatchMLP` that are not ``PatchMLPEncoder`` arguments.
PRETRAIN_ONLY_KEYS = ('data_root', 'cutout_size', 'pretrain', 'layout')


@MODELS.register_module()
class SyntheticPretrainedPatchMLP(PatchMLPEncoder):
    """A ``PatchMLPEncoder`` whose ``init_weights`` loads the weights pretrained on the train split
    of ``data_root`` (:func:`pretrained_encoder_path`: built once, then cached).

    Same parameters (and state-dict keys) as ``PatchMLPEncoder``; for a config's refiner encoder:
    ``backbone=dict(type='SyntheticPretrainedPatchMLP', in_channels=3, patch_size=4,
    embed_dims=(64, 128), data_root=None, cutout_size=16)``. ``init_weights`` first draws the
    random weights as ``PatchMLPEncoder`` does (so the caller's random stream moves on exactly as
    with the random encoder), then overwrites them with the pretrained ones.

    Args:
        data_root: the dataset the run trains on (None: the default synthetic set of
            ``layout``, as for the run's dataset); must be the run's ``data_root``.
        cutout_size: the encoder's input size (the refiner's ``cutout_size``).
        pretrain: overrides of the pretraining settings (:data:`DEFAULTS`).
        layout: 'bcss' (``BCSSWSSSDataset``) or 'luad' (``LUADHistoSegDataset``): whose default
            synthetic set ``data_root`` None is.
        Others: as ``PatchMLPEncoder``.
    """

    def __init__(self, in_channels: int = 3, patch_size: int = 4,
                 embed_dims: Sequence[int] = (64, 128), bias_std: float = 0.1,
                 data_root: Optional[str] = None, cutout_size=16,
                 pretrain: Optional[dict] = None, init_cfg=None, layout: str = 'bcss'):
        super().__init__(in_channels, patch_size, embed_dims, bias_std, init_cfg=init_cfg)
        self.data_root = data_root
        self.layout = layout
        self.cutout_size = cutout_size
        self.pretrain = dict(pretrain or {})
        pretrain_settings(**self.pretrain)  # unknown keys fail at build time
        self.pretrained_path = None

    def backbone_cfg(self) -> dict:
        return dict(type='PatchMLPEncoder', in_channels=self.in_channels,
                    patch_size=self.patch_size, embed_dims=list(self.embed_dims),
                    bias_std=self.bias_std)

    def path(self, progress: Optional[Callable[[str], None]] = None) -> Path:
        """The cached pretrained weights of this encoder (built first if missing)."""
        return pretrained_encoder_path(self.backbone_cfg(), self.data_root, self.cutout_size,
                                       progress=progress, layout=self.layout, **self.pretrain)

    def init_weights(self):
        super().init_weights()
        from mmengine.logging import print_log
        path = self.path(progress=lambda line: print_log(line, logger='current'))
        self.load_state_dict(read_pretrained(path)['state_dict'])
        self.pretrained_path = str(path)


#: Values of the ``cpu_encoder`` config variable / alias.
CPU_ENCODERS = ('random', 'pretrained')


def _register_cpu_encoder_alias():
    from ..apis import register_config_alias

    @register_config_alias('cpu_encoder')
    def set_cpu_encoder(cfg, value) -> None:
        """``--cfg-options cpu_encoder=random|pretrained``: the refiner's frozen-encoder backbone
        is the random ``PatchMLPEncoder`` or :class:`SyntheticPretrainedPatchMLP` (same shape)
        pretrained on the train split of the config's ``data_root`` (apply ``data_root`` first,
        or have ``set_data_root`` copy it into the backbone). A config without a refiner (CAM)
        only records the value."""
        if value not in CPU_ENCODERS:
            raise ValueError(f'cpu_encoder must be one of {CPU_ENCODERS}, got {value!r}')
        cfg.cpu_encoder = value
        refiner = cfg.model.get('decode_head', {}).get('refiner_loss')
        if refiner is None or 'encoder' not in refiner:
            return
        backbone = refiner['encoder']['backbone']
        if backbone.get('type') not in ('PatchMLPEncoder', SyntheticPretrainedPatchMLP.__name__):
            raise ValueError(f'cpu_encoder={value!r}: the refiner encoder\'s backbone is '
                             f'{backbone.get("type")!r}, not a PatchMLPEncoder')
        if value == 'pretrained':
            backbone['type'] = SyntheticPretrainedPatchMLP.__name__
            backbone['data_root'] = cfg.get('data_root')
            backbone['cutout_size'] = refiner.get('cutout_size')
        else:
            backbone['type'] = 'PatchMLPEncoder'
            for key in PRETRAIN_ONLY_KEYS:
                backbone.pop(key, None)

    return set_cpu_encoder


set_cpu_encoder = _register_cpu_encoder_alias()
