"""Benchmark cases: what is timed, built from the project's configs with synthetic in-memory batches.

A :class:`CaseSpec` is plain data (it travels as JSON to the memory probe subprocess);
:func:`prepare_case` turns it into a zero-argument callable doing one unit of work (one training
step, one inference batch, ...) on a fixed random batch, so no data loading is ever timed.
"""
import contextlib
import logging
import os
import os.path as osp
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from lpd_bench.data.bcss_meta import NUM_TISSUE_CLASSES, PATCH_SIZE

#: Unit-of-work kinds.
BACKBONE, TRAIN_STEP, INFERENCE, BANK_ENCODE, BANK_KMEANS = (
    'backbone', 'train_step', 'inference', 'bank_encode', 'bank_kmeans')
#: Single-label embeddings per class clustered by the stage-A k-means case.
KMEANS_POINTS_PER_CLASS = 256

REFINER = 'model.decode_head.refiner_loss.'
#: Cut-outs per frozen-encoder call in the chunked variants.
CHUNK_SIZE = 16
FP32 = {REFINER + 'encoder_autocast': None}
BF16 = {REFINER + 'encoder_autocast': 'bfloat16'}
PLAIN_REFINER = {REFINER + 'chunk_size': None, REFINER + 'checkpoint_encoder': False}
#: The memory levers on whatever device the case runs and for any batch (the paper config keeps
#: them for CPU and batches of more than 64 cut-outs).
ALL_DEVICES = {REFINER + 'memory_saving_devices': None, REFINER + 'memory_saving_above': None}
CHECKPOINTED = {REFINER + 'chunk_size': None, REFINER + 'checkpoint_encoder': True, **ALL_DEVICES}
CHUNKED_CHECKPOINTED = {REFINER + 'chunk_size': CHUNK_SIZE, REFINER + 'checkpoint_encoder': True,
                        **ALL_DEVICES}
NO_REFINER = {'model.decode_head.refiner_loss': None}
SINGLE_VIEW = {'model.test_cfg.flip': False, 'model.test_cfg.intensities': (1.0, )}
NO_CRF = {'model.test_cfg.crf': False}


@dataclass
class CaseSpec:
    """One benchmark case.

    ``method`` names the config of the preset (cam, pbip, lpd); ``train_iter`` is written to
    MessageHub's 'iter' before every call (None: leave it; 'warmup' would be the config's
    ``loss_warmup_iters``, resolved when preparing); ``encoder_weight_grads`` turns
    ``requires_grad`` back on for the frozen encoder's weights (after the optimizer is built, so
    they get gradients but are never updated: the cost of a straightforward implementation).
    """
    name: str
    kind: str
    method: str
    cfg_options: Dict = field(default_factory=dict)
    train_iter: Optional[object] = None
    encoder_weight_grads: bool = False
    description: str = ''

    def to_dict(self) -> dict:
        return asdict(self)


def _after(name, description, **kw):
    return CaseSpec(name, TRAIN_STEP, 'lpd', train_iter='warmup', description=description, **kw)


CPU_CASES = (
    CaseSpec('backbone', BACKBONE, 'lpd', description='bare backbone forward + backward'),
    CaseSpec('cam_step', TRAIN_STEP, 'cam', description='CAM training step'),
    CaseSpec('pbip_step', TRAIN_STEP, 'pbip', train_iter='warmup',
             description='PBIP stage B training step (random unit bank), refiner on'),
    CaseSpec('lpd_step_before', TRAIN_STEP, 'lpd', train_iter=0,
             description='LPD training step before the loss warm-up'),
    _after('lpd_step_after', 'LPD training step after the loss warm-up'),
    _after('lpd_step_after_bf16', 'as lpd_step_after, frozen encoder under bfloat16 autocast',
           cfg_options=BF16),
    _after('lpd_step_after_no_refiner', 'as lpd_step_after without the mask refiner (attribution)',
           cfg_options=NO_REFINER),
    CaseSpec('infer_single', INFERENCE, 'lpd', cfg_options=dict(SINGLE_VIEW, **NO_CRF),
             description='LPD inference, single view'),
    CaseSpec('infer_tta', INFERENCE, 'lpd', cfg_options=dict(NO_CRF),
             description='LPD inference, TTA (config test_cfg: flip x 3 intensities = 6 views)'),
    CaseSpec('bank_encode', BANK_ENCODE, 'pbip',
             description='PBIP stage A: frozen-encoder embeddings of a batch'),
    CaseSpec('bank_kmeans', BANK_KMEANS, 'pbip',
             description=f'PBIP stage A: spherical k-means, {KMEANS_POINTS_PER_CLASS} points per class'),
)
PAPER_CASES = (
    CPU_CASES[0],
    CPU_CASES[3],
    _after('lpd_step_after', 'LPD training step after the loss warm-up (config as committed)'),
    _after('lpd_step_after_plain', 'frozen encoder weights, fp32, no chunking, no checkpointing',
           cfg_options=dict(PLAIN_REFINER, **FP32)),
    _after('lpd_step_after_straightforward',
           'straightforward refiner: fp32, one encoder call, no checkpointing, encoder weight gradients',
           cfg_options=dict(PLAIN_REFINER, **FP32), encoder_weight_grads=True),
    _after('lpd_step_after_checkpoint', 'frozen, fp32 + encoder activation checkpointing',
           cfg_options=dict(CHECKPOINTED, **FP32)),
    _after('lpd_step_after_chunk_checkpoint',
           f'frozen, fp32 + checkpointing + chunks of {CHUNK_SIZE} cut-outs',
           cfg_options=dict(CHUNKED_CHECKPOINTED, **FP32)),
    _after('lpd_step_after_bf16', 'frozen + encoder under bfloat16 autocast, no chunks/checkpointing',
           cfg_options=dict(PLAIN_REFINER, **BF16)),
    _after('lpd_step_after_chunk_checkpoint_bf16',
           'frozen + checkpointing + chunks + bfloat16 encoder autocast',
           cfg_options=dict(CHUNKED_CHECKPOINTED, **BF16)),
)
PRESETS = {
    'cpu': dict(configs={m: f'configs/{m}_synth_cpu.py' for m in ('cam', 'pbip', 'lpd')},
                cases=CPU_CASES),
    'paper': dict(configs={m: f'configs/{m}_bcss.py' for m in ('cam', 'pbip', 'lpd')},
                  cases=PAPER_CASES),
}


def load_config(path: str, cfg_options: Optional[dict] = None):
    """mmengine Config of ``path`` with ``cfg_options`` merged (and mmseg as default scope)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    if not osp.isfile(path):
        raise FileNotFoundError(f'benchmark config {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


def default_batch_size(cfg) -> int:
    return int(cfg.train_dataloader.batch_size)


def default_input_size(cfg) -> int:
    """The config's ``input_size`` (first side) if it sets one, else the native patch size."""
    size = cfg.get('input_size', PATCH_SIZE)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def random_batch(batch: int, size: int, num_classes: int = NUM_TISSUE_CLASSES, seed: int = 0,
                 with_masks: bool = False) -> dict:
    """A model input dict like a dataloader's: uint8 BGR images and data samples with ``img_label``.

    Labels hold 1..3 classes; ``with_masks`` adds a random ground-truth mask (values 0..4).
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        label = np.zeros(num_classes, dtype=np.int64)
        label[rng.choice(num_classes, size=rng.integers(1, min(3, num_classes) + 1), replace=False)] = 1
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        sample = SegDataSample(metainfo=dict(img_label=label.tolist(), img_shape=(size, size),
                                             ori_shape=(size, size), pad_shape=(size, size)))
        if with_masks:
            mask = torch.from_numpy(rng.integers(0, num_classes + 1, (1, size, size)))
            sample.gt_sem_seg = PixelData(data=mask)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def write_random_bank(cfg, path: str, seed: int = 0) -> None:
    """A PBIP bank file of random unit vectors with the shape the config's prototypes expect."""
    protos = cfg.model.decode_head.prototypes
    num_classes = int(cfg.model.decode_head.num_classes)
    k, dim = int(protos.get('num_per_class', 3)), int(protos.get('dim', 512))
    gen = torch.Generator().manual_seed(seed)
    vectors = torch.nn.functional.normalize(torch.randn(num_classes * k, dim, generator=gen), dim=1)
    torch.save({'prototypes': vectors, 'num_classes': num_classes, 'num_per_class': k,
                'classes': ['TUM', 'STR', 'LYM', 'NEC'][:num_classes], 'seed': seed}, path)


def frozen_encoders(model: torch.nn.Module) -> List[torch.nn.Module]:
    from lpd_bench.models.frozen_encoder import FrozenImageEncoder
    return [m for m in model.modules() if isinstance(m, FrozenImageEncoder)]


def set_train_iter(value: Optional[int]) -> None:
    if value is not None:
        from mmengine.logging import MessageHub
        MessageHub.get_current_instance().update_info('iter', value)


@contextlib.contextmanager
def quiet_logger(level: int = logging.WARNING):
    """Raise the level of mmengine's current logger (init_weights logs every parameter)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def build_model(cfg, device: torch.device) -> torch.nn.Module:
    """``MODELS.build(cfg.model)`` with weights initialised (random: no checkpoint is loaded)."""
    from mmseg.registry import MODELS
    with quiet_logger():
        model = MODELS.build(cfg.model)
        if hasattr(model, 'init_weights'):
            model.init_weights()
    return model.to(device)


def build_optim_wrapper(model, cfg, device: torch.device, amp: bool = False):
    """The config's optimizer in a plain OptimWrapper (AmpOptimWrapper when ``amp``)."""
    from mmengine.optim import build_optim_wrapper as build
    optim_cfg = cfg.optim_wrapper.copy()
    optim_cfg['type'] = 'AmpOptimWrapper' if amp else 'OptimWrapper'
    if not amp:
        for key in ('loss_scale', 'dtype'):
            optim_cfg.pop(key, None)
    return build(model, optim_cfg)


@dataclass
class PreparedCase:
    """A case ready to run: ``run()`` does one unit of work on ``items`` images."""
    run: Callable[[], object]
    items: int
    cleanup: Callable[[], None] = lambda: None


def prepare_case(spec: CaseSpec, config_path: str, batch: int, size: int,
                 device: str = 'cpu', cfg_options: Optional[dict] = None) -> PreparedCase:
    """Build the model/optimizer/data of ``spec`` from ``config_path`` (+ global, then case options)."""
    device = torch.device(device)
    options = dict(cfg_options or {}, **spec.cfg_options)
    bank_dir = None
    if spec.method == 'pbip' and spec.kind == TRAIN_STEP:
        bank_dir = tempfile.mkdtemp(prefix='lpd_bench_bank_')
        bank_path = osp.join(bank_dir, 'bank.pth')
        write_random_bank(load_config(config_path, options), bank_path)
        options['model.decode_head.prototypes.bank_path'] = bank_path
    cfg = load_config(config_path, options)
    num_classes = int(cfg.model.decode_head.num_classes)

    def cleanup():
        if bank_dir:
            for name in os.listdir(bank_dir):
                os.unlink(osp.join(bank_dir, name))
            os.rmdir(bank_dir)

    if spec.kind == BANK_KMEANS:
        return PreparedCase(_kmeans_runner(cfg, num_classes), KMEANS_POINTS_PER_CLASS * num_classes,
                            cleanup)
    train = spec.kind in (BACKBONE, TRAIN_STEP)
    data = random_batch(batch, size, num_classes, with_masks=not train)
    if spec.kind == BANK_ENCODE:
        from mmseg.registry import MODELS
        encoder = MODELS.build(cfg.model.decode_head.refiner_loss.encoder).to(device).eval()
        from lpd_bench.models.encoder_resize import resize_for_encoder
        inputs = MODELS.build(cfg.model.data_preprocessor).to(device)(data, False)['inputs']
        size = cfg.model.decode_head.refiner_loss.get('cutout_size')  # as stage A embeds them
        if size is not None:
            inputs = resize_for_encoder(inputs, size)

        def encode():
            with torch.no_grad():
                return torch.nn.functional.normalize(encoder(inputs).float(), dim=1)
        return PreparedCase(encode, batch, cleanup)
    model = build_model(cfg, device)
    if spec.kind == TRAIN_STEP:
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg, device)
        if spec.encoder_weight_grads:
            encoders = frozen_encoders(model)
            if not encoders:
                raise ValueError(f'case {spec.name}: {config_path} has no FrozenImageEncoder')
            for enc in encoders:
                enc.requires_grad_(True)
        it = (int(cfg.model.decode_head.get('loss_warmup_iters', 0))
              if spec.train_iter == 'warmup' else spec.train_iter)

        def run():
            set_train_iter(it)
            return model.train_step(data, optim_wrapper)
    elif spec.kind == BACKBONE:
        model.train()
        inputs = model.data_preprocessor(data, True)['inputs']

        def run():
            feats = model.backbone(inputs)
            sum(f.float().mean() for f in feats).backward()
            model.zero_grad(set_to_none=True)
    elif spec.kind == INFERENCE:
        model.eval()

        def run():
            with torch.no_grad():
                return model.test_step(data)
    else:
        raise ValueError(f'case {spec.name}: unknown kind {spec.kind!r}')
    return PreparedCase(run, batch, cleanup)


def _kmeans_runner(cfg, num_classes: int) -> Callable[[], object]:
    from baselines.pbip.prototype_bank import spherical_kmeans
    k = int(cfg.model.decode_head.prototypes.get('num_per_class', 3))
    dim = int(cfg.model.decode_head.prototypes.get('dim', 512))
    feats = np.random.default_rng(0).standard_normal(
        (num_classes, KMEANS_POINTS_PER_CLASS, dim)).astype(np.float32)

    def run():
        return [spherical_kmeans(f, k, seed=0) for f in feats]
    return run


@contextlib.contextmanager
def prepared(spec: CaseSpec, config_path: str, batch: int, size: int, device: str,
             cfg_options: Optional[dict] = None):
    """Context manager around :func:`prepare_case` that always cleans up (temp bank files)."""
    case = prepare_case(spec, config_path, batch, size, device, cfg_options)
    try:
        yield case
    finally:
        case.cleanup()


def case_by_name(preset: str, name: str) -> CaseSpec:
    for spec in PRESETS[preset]['cases']:
        if spec.name == name:
            return spec
    raise KeyError(f'no case {name!r} in preset {preset!r}: choose from '
                   f'{[s.name for s in PRESETS[preset]["cases"]]}')


def select_cases(preset: str, names: Optional[List[str]]) -> Tuple[CaseSpec, ...]:
    if preset not in PRESETS:
        raise KeyError(f'unknown preset {preset!r}: choose from {sorted(PRESETS)}')
    if not names:
        return tuple(PRESETS[preset]['cases'])
    return tuple(case_by_name(preset, n) for n in names)
