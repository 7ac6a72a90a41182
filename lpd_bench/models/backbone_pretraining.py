"""A backbone initialisation for the CPU preset that stands in for ImageNet weights.

Every method of the paper starts its MiT from ImageNet weights; the CPU preset downloads nothing,
and from a random start its tiny MiT needs thousands of iterations on synthetic data version 3
before CAM flattens (reports/calibration_v3.md), far more than the preset's time budget allows for
fifteen runs. This module pretrains the backbone ONCE per dataset and caches it like the data;
every method (and every seed) of a preset then starts from the same weights, as they would from
the same ImageNet file:

- **Data**: every train image with its file-name label (image-level, the weak labels every
  method trains on; no mask and no val/test image is ever read), read as the model reads it (BGR,
  normalised as the configs' ``SegDataPreProcessor``) and resized once to the preset's input size
  (``input_size``, bilinear as mmcv's ``Resize``).
- **Views**: the train pipeline's flips and 90-degree rotation; optionally a stain jitter
  (``stain_jitter`` = (s, a), off by default; as for the refiner encoder in
  :mod:`.encoder_pretraining`).
- **Objective**: a multi-label classifier with one vector per class and stage
  (:func:`classification_head`: the prototype head at k = 1 with only its classification loss,
  the paper family's image-level loss; no diversity, refiner or clustering), AdamW with a cosine
  decay. The head is thrown away; only the backbone is kept. (Why this head and not a plain
  average-pool + linear classifier: reports/cpu_backbone.md.)
- **Determinism**: one seeded generator draws everything, deterministic algorithms; the weights
  are identical for the same inputs and thread count (the thread count is recorded in ``meta``).

:func:`pretrained_backbone_path` caches the weights under ``<cache_dir>/backbones/``, keyed by a
hash of the backbone config, the input size, the data (:func:`~.encoder_pretraining.
data_fingerprint`), every setting and :data:`CODE_VERSION`; built on first use under a file lock,
written to a temp file and renamed. A config asks for it with the ``init_cfg`` type
:class:`SyntheticPretrainedBackbone` (``data_root`` None is the default synthetic set of its
``layout``, 'bcss' or 'luad'), which the ``backbone_init`` alias sets (``--cfg-options
backbone_init=scratch|pretrained``). The train labels are read in the folder's own layout
(:func:`~.encoder_pretraining.train_images`).
"""
import json
import re
import time
from copy import deepcopy
from pathlib import Path
from typing import Callable, Optional

import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from mmseg.registry import MODELS

from ..data.bcss_meta import NUM_TISSUE_CLASSES
from .encoder_pretraining import (_read_bgr, build_once, cache_file, data_fingerprint,
                                  deterministic_cpu, merged_settings, normalise_bgr, random_flips, read_pretrained,
                                  resolve_data_root, stain_jittered, train_images)

#: Bump whenever the pretraining would give other weights for the same settings (names the cache).
CODE_VERSION = 3
#: Default pretraining settings (:func:`pretrain_backbone`).
DEFAULTS = dict(iters=9600, seed=0, batch_size=8, lr=1e-3, weight_decay=1e-3,
                stain_jitter=(0.0, 0.0), head='stage_vectors')
#: Pretraining heads: the prototype head with one vector per class and stage, unprojected
#: (``stage_vectors``, the default) or one learnable 512-d prototype per class projected to every
#: stage (``projected``).
HEADS = ('stage_vectors', 'projected')
#: Sub-folder of the cache dir holding the pretrained backbones.
CACHE_SUBDIR = 'backbones'
#: Values of the ``backbone_init`` config variable / alias of the CPU preset.
BACKBONE_INITS = ('scratch', 'pretrained')


def load_train_set(data_root, input_size) -> tuple:
    """(images (N, 3, H, W) normalised, labels (N, 4) float) of the whole train split, each image
    resized to ``input_size`` (h, w) bilinearly as the preset's ``Resize`` does."""
    paths, labels = train_images(data_root, purpose='backbone pretraining')
    h, w = (int(v) for v in input_size)
    images = [torch.from_numpy(mmcv.imresize(_read_bgr(p), (w, h), interpolation='bilinear'))
              .permute(2, 0, 1) for p in paths]
    return normalise_bgr(torch.stack(images)), torch.from_numpy(labels).float()


def architecture(module: nn.Module) -> str:
    """What identifies a backbone's architecture in the cache key: its class and its ``repr``
    (every layer with its shape, kernel, stride and padding), without the ``init_cfg`` that
    mmengine's ``BaseModule`` appends to it (the same backbone built with or without this
    initialiser, or with another ``data_root`` spelling in it, names the same file; the data and
    settings are keyed on their own)."""
    held = [(m, m.init_cfg) for m in module.modules() if getattr(m, 'init_cfg', None)]
    try:
        for m, _ in held:
            m.init_cfg = None
        text = repr(module)
    finally:
        for m, init_cfg in held:
            m.init_cfg = init_cfg
    return f'{type(module).__module__}.{type(module).__qualname__}\n{text}'


def fresh_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its own random initialisation (``init_weights`` without the
    ``init_cfg``), on the CPU, in train mode."""
    copy = deepcopy(module).cpu()
    copy.init_cfg = None
    if hasattr(copy, '_is_init'):
        copy._is_init = False
    copy.init_weights()
    return copy.train()


def classification_head(widths, head: str = DEFAULTS['head']) -> nn.Module:
    """The pretraining head: :class:`~.prototype_head.PrototypeHead` at k = 1 with only its
    classification loss (per-stage cosine similarity maps, mean-pooled, binary cross-entropy
    against the image labels, stages 2-4 weighted 0.1 / 1 / 1), i.e. a multi-label classifier with
    one vector per class; no diversity, refiner or clustering. ``head``: :data:`HEADS`
    (``stage_vectors`` is registered by ``baselines.cam``, imported here)."""
    if head not in HEADS:
        raise ValueError(f'backbone pretraining: head must be one of {HEADS}, got {head!r}')
    if head == 'stage_vectors':
        import baselines.cam  # noqa: F401  (registers StageClassVectors)
        prototypes = dict(type='StageClassVectors', num_per_class=1)
    else:
        prototypes = dict(type='LearnablePrototypes', num_per_class=1, dim=512)
    return MODELS.build(dict(
        type='PrototypeHead', in_channels=list(widths), num_classes=NUM_TISSUE_CLASSES,
        prototypes=prototypes, stage_loss_weights=[0.0, 0.1, 1.0, 1.0][-len(widths):],
        diversity_loss=None, refiner_loss=None))


def labelled_samples(labels: torch.Tensor) -> list:
    """Data samples carrying only ``img_label`` (what the head's loss reads)."""
    from mmseg.structures import SegDataSample
    return [SegDataSample(metainfo=dict(img_label=row.tolist())) for row in labels]


def pretrain_backbone(module: nn.Module, data_root=None, input_size=(112, 112),
                      iters: int = DEFAULTS['iters'], seed: int = DEFAULTS['seed'],
                      batch_size: int = DEFAULTS['batch_size'], lr: float = DEFAULTS['lr'],
                      weight_decay: float = DEFAULTS['weight_decay'],
                      stain_jitter=DEFAULTS['stain_jitter'], head: str = DEFAULTS['head'],
                      progress: Optional[Callable[[str], None]] = None,
                      info: Optional[dict] = None) -> dict:
    """Pretrain a fresh copy of the backbone ``module`` (whose last output is pooled) as a
    multi-label classifier on the train split of ``data_root``; return its state dict.

    ``info``, if given, gets the time, the thread count and the mean loss over the last tenth of
    the steps.
    """
    say = progress or (lambda line: None)
    started = time.perf_counter()
    root = resolve_data_root(data_root)
    threads = torch.get_num_threads()
    with deterministic_cpu(seed, threads):  # deterministic for a given thread count (recorded)
        images, labels = load_train_set(root, input_size)
        backbone = fresh_copy(module)
        head = classification_head([f.shape[1] for f in backbone(images[:1])], head)
        params = list(backbone.parameters()) + list(head.parameters())
        optim = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        say(f'backbone pretraining: {len(labels)} train images of {root} (image-level labels), '
            f'{iters} iterations of {batch_size} at {images.shape[-2]}x{images.shape[-1]} px')
        last_loss, seen = 0.0, 0
        for it in range(iters):
            for group in optim.param_groups:
                group['lr'] = lr * 0.5 * (1 + np.cos(np.pi * it / max(1, iters)))
            pick = torch.randint(0, len(labels), (batch_size, ), generator=gen)
            views = stain_jittered(random_flips(images[pick], gen), stain_jitter, gen)
            losses = head.loss(backbone(views), labelled_samples(labels[pick]), views)
            loss = sum(losses.values())
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            if it >= iters - max(1, iters // 10):
                last_loss += float(loss.detach())
                seen += 1
            if (it + 1) % max(1, iters // 5) == 0 or it + 1 == iters:
                say(f'  iter {it + 1}/{iters}  loss {float(loss.detach()):.4f}  '
                    f'{time.perf_counter() - started:.1f} s')
        state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    if info is not None:
        info.update(seconds=round(time.perf_counter() - started, 2), threads=threads,
                    final_train_loss=round(last_loss / max(1, seen), 4),
                    train_images=len(labels))
    return state


def pretrain_settings(**overrides) -> dict:
    """:data:`DEFAULTS` with ``overrides`` (unknown keys are an error), JSON-normalised."""
    return merged_settings(DEFAULTS, overrides, 'backbone pretraining', ('stain_jitter', ))


def backbone_cache_dir() -> Path:
    from ..data.synthetic import cache_dir
    return cache_dir() / CACHE_SUBDIR


def pretrained_backbone_path(module: nn.Module, data_root=None, input_size=(112, 112),
                             build: bool = True,
                             progress: Optional[Callable[[str], None]] = None,
                             layout: str = 'bcss', **settings) -> Path:
    """Path of the cached pretrained backbone for these inputs, pretrained first if missing.

    ``<cache_dir>/backbones/<type>-<data folder>-it<iters>-seed<seed>-<hash>.pth``. Built under a
    lock file (one process pretrains, the others wait and reuse it), written to a temp file and
    renamed. ``build=False`` only returns the path. ``layout``: of the default synthetic set that
    ``data_root`` None stands for (not in the key: the two sets differ in their data).
    ``settings``: overrides of :data:`DEFAULTS`.
    """
    root = resolve_data_root(data_root, layout)
    settings = pretrain_settings(**settings)
    key = dict(backbone=architecture(module), input_size=[int(v) for v in input_size],
               data=data_fingerprint(root), settings=settings, code_version=CODE_VERSION)
    kind = re.sub(r'[^A-Za-z0-9]+', '', type(module).__name__).lower()
    path = cache_file(backbone_cache_dir(), kind, root, settings, key)
    if not build or path.is_file():
        return path

    def pretrain() -> dict:
        info = {}
        state = pretrain_backbone(module, root, input_size, progress=progress, info=info,
                                  **settings)
        meta = dict(key=json.loads(json.dumps(key, default=str)), data_root=str(root), **info,
                    note='CPU-preset backbone pretrained on the train split with image-level '
                    'labels (lpd_bench.models.backbone_pretraining)')
        return dict(state_dict=state, meta=meta)

    return build_once(path, pretrain, progress, 'backbone pretraining')


@WEIGHT_INITIALIZERS.register_module()
class SyntheticPretrainedBackbone:
    """``init_cfg`` type: the backbone's weights pretrained on the train split of ``data_root``
    (:func:`pretrained_backbone_path`: built once, then cached).

    The module it initialises is the model that is pretrained (a fresh copy) and names the cache
    (:func:`architecture`).

    Args:
        data_root: the dataset the run trains on (None: the default synthetic set of
            ``layout``); must be the run's ``data_root`` (the ``data_root`` alias keeps them
            equal).
        input_size: (h, w) the images are resized to, the preset's ``input_size``.
        pretrain: overrides of the pretraining settings (:data:`DEFAULTS`).
        layout: 'bcss' (``BCSSWSSSDataset``) or 'luad' (``LUADHistoSegDataset``): whose default
            synthetic set ``data_root`` None is.
    """

    def __init__(self, data_root=None, input_size=(112, 112), pretrain: Optional[dict] = None,
                 layout: str = 'bcss'):
        self.data_root = data_root
        self.layout = layout
        self.input_size = tuple(input_size)
        self.pretrain = dict(pretrain or {})
        pretrain_settings(**self.pretrain)  # unknown keys fail at build time

    def path(self, module: nn.Module, build: bool = True,
             progress: Optional[Callable[[str], None]] = None) -> Path:
        """The cached weights for ``module`` (built first unless ``build=False``); ``progress``
        gets the pretraining's lines (default: mmengine's current logger)."""
        return pretrained_backbone_path(
            module, self.data_root, self.input_size, build=build,
            progress=progress or (lambda line: print_log(line, logger='current')),
            layout=self.layout, **self.pretrain)

    def __call__(self, module: nn.Module) -> None:
        path = self.path(module)
        print_log(f'load the synthetic-pretrained backbone from: {path}', logger='current')
        module.load_state_dict(read_pretrained(path)['state_dict'])
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'SyntheticPretrainedBackbone: load from {path}')


def synthetic_init_cfg(cfg) -> Optional[dict]:
    """The backbone's ``SyntheticPretrainedBackbone`` init config in ``cfg``, else None."""
    init = (cfg.get('model', {}).get('backbone', {}) or {}).get('init_cfg')
    if isinstance(init, dict) and init.get('type') == SyntheticPretrainedBackbone.__name__:
        return init
    return None


def _register_backbone_init_alias():
    from ..apis import register_config_alias

    @register_config_alias('backbone_init')
    def set_backbone_init(cfg, value) -> None:
        """``--cfg-options backbone_init=scratch|pretrained``: the MiT starts from random weights
        or from :class:`SyntheticPretrainedBackbone` (pretrained on the train split of the
        config's ``data_root``; apply ``data_root`` first, or let ``set_data_root`` copy it).
        ``pretrained`` keeps the ``pretrain`` settings and the ``layout`` of an init_cfg that is
        one already (the plain options are merged before the aliases)."""
        if value not in BACKBONE_INITS:
            raise ValueError(f'backbone_init must be one of {BACKBONE_INITS}, got {value!r}')
        cfg.backbone_init = value
        backbone = cfg.model.backbone
        if value == 'scratch':
            backbone['init_cfg'] = None
            return
        init = synthetic_init_cfg(cfg) or {}
        backbone['init_cfg'] = dict(type=SyntheticPretrainedBackbone.__name__,
                                    data_root=cfg.get('data_root'),
                                    input_size=tuple(cfg.get('input_size', (112, 112))))
        if init.get('pretrain'):  # settings given with --cfg-options model.backbone.init_cfg...
            backbone['init_cfg']['pretrain'] = dict(init['pretrain'])
        if init.get('layout'):  # a LUAD-HistoSeg config's default synthetic set
            backbone['init_cfg']['layout'] = init['layout']

    return set_backbone_init


set_backbone_init = _register_backbone_init_alias()
