"""Benchmark cases: what is timed, built from the project's configs with synthetic in-memory batches.

The cases are the registered methods' (:mod:`lpd_bench.methods`, ``MethodSpec.bench_cases``);
:func:`prepare_case` turns a :class:`~.case_spec.CaseSpec` into a zero-argument callable doing
one unit of work (one training step, one inference batch, ...) on a fixed random batch, so no
data loading is ever timed.
"""
import contextlib
import functools
import importlib
import logging
import os
import os.path as osp
import tempfile
from typing import List, Optional, Tuple

import torch

from lpd_bench.data.bcss_meta import PATCH_SIZE

from .case_spec import (BACKBONE, CUSTOM, INFERENCE, TRAIN_STEP, CaseSpec,  # noqa: F401
                        PreparedCase, random_batch)

def preset_cases(preset: str) -> Tuple[CaseSpec, ...]:
    """Every registered method's cases of ``preset``, in the methods' table order."""
    from lpd_bench.methods import PRESETS, registered_methods
    if preset not in PRESETS:
        raise KeyError(f'unknown preset {preset!r}: choose from {sorted(PRESETS)}')
    return tuple(case for spec in registered_methods() for case in spec.bench_cases.get(preset, ()))


def case_config(preset: str, spec: CaseSpec) -> str:
    """The config file (relative to the repository root) a case runs with."""
    from lpd_bench.methods import get_method
    return get_method(spec.method).config(preset)


def load_config(path: str, cfg_options: Optional[dict] = None):
    """mmengine Config of ``path`` with ``cfg_options`` merged as the tools merge them (aliases
    included), and the config's default scope initialised."""
    from lpd_bench.apis import load_config as load
    return load(path, cfg_options, init_scope=True)


def default_batch_size(cfg) -> int:
    return int(cfg.train_dataloader.batch_size)


def default_input_size(cfg) -> int:
    """The config's ``input_size`` (first side) if it sets one, else the native patch size."""
    size = cfg.get('input_size', PATCH_SIZE)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


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


def build_optim_wrapper(model, cfg, device: torch.device, amp: bool = False,
                        dtype: Optional[str] = None):
    """The config's optimizer in a plain OptimWrapper (AmpOptimWrapper when ``amp``, its autocast
    dtype ``dtype`` if given, else the config's ``optim_wrapper.dtype``, else float16).

    On CPU, where mmengine's AmpOptimWrapper asserts CUDA, ``amp`` gives an OptimWrapper whose
    forward (``optim_context``) runs under ``torch.autocast('cpu', dtype)``, without loss scaling.
    """
    from mmengine.optim import build_optim_wrapper as build
    optim_cfg = cfg.optim_wrapper.copy()
    if amp and dtype is not None:
        optim_cfg['dtype'] = dtype
    amp_dtype = optim_cfg.get('dtype') or 'float16'
    cuda_amp = amp and torch.device(device).type == 'cuda'
    optim_cfg['type'] = 'AmpOptimWrapper' if cuda_amp else 'OptimWrapper'
    if not cuda_amp:
        for key in ('loss_scale', 'dtype'):
            optim_cfg.pop(key, None)
    wrapper = build(model, optim_cfg)
    if amp and not cuda_amp:
        wrapper.__class__ = _autocast_optim_wrapper_class()
        wrapper.autocast = (torch.device(device).type, getattr(torch, amp_dtype))
    return wrapper


@functools.lru_cache(maxsize=None)
def _autocast_optim_wrapper_class():
    from mmengine.optim import OptimWrapper

    class AutocastOptimWrapper(OptimWrapper):
        """OptimWrapper whose ``optim_context`` (the model's forward in ``train_step``) runs under
        ``torch.autocast(*self.autocast)``: AMP for the bench on devices where mmengine's
        AmpOptimWrapper does not run. Not registered; made by :func:`build_optim_wrapper`."""
        autocast = ('cpu', torch.bfloat16)

        @contextlib.contextmanager
        def optim_context(self, model):
            with super().optim_context(model), torch.autocast(self.autocast[0],
                                                              dtype=self.autocast[1]):
                yield

    return AutocastOptimWrapper


def write_stand_ins(method: str, cfg, folder) -> dict:
    """Write a stand-in output of each of ``method``'s pre-stages that has one (e.g. a random
    prototype bank) into ``folder``, for ``cfg``; returns {config key: path} to merge into it."""
    from lpd_bench.methods import get_method
    filled = {}
    for stage in get_method(method).pre_stages:
        if stage.stand_in is not None and stage.config_key is not None:
            path = osp.join(str(folder), stage.name + stage.suffix)
            stage.stand_in(cfg, path)
            filled[stage.config_key] = path
    return filled


def prepare_case(spec: CaseSpec, config_path: str, batch: int, size: int,
                 device: str = 'cpu', cfg_options: Optional[dict] = None) -> PreparedCase:
    """Build the model/optimizer/data of ``spec`` from ``config_path`` (+ global, then case options)."""
    device = torch.device(device)
    options = dict(cfg_options or {}, **spec.cfg_options)
    cfg = load_config(config_path, options)
    stand_in_dir = None
    if spec.kind == TRAIN_STEP:  # a pre-stage's output (e.g. a prototype bank): a stand-in
        stand_in_dir = tempfile.mkdtemp(prefix='lpd_bench_stand_in_')
        cfg.merge_from_dict(write_stand_ins(spec.method, cfg, stand_in_dir))

    def cleanup():
        if stand_in_dir:
            for name in os.listdir(stand_in_dir):
                os.unlink(osp.join(stand_in_dir, name))
            os.rmdir(stand_in_dir)

    if spec.kind == CUSTOM:
        module, _, function = (spec.prepare or '').partition(':')
        if not module or not function:
            raise ValueError(f"case {spec.name}: kind 'custom' needs prepare='module:function', "
                             f'got {spec.prepare!r}')
        prepared = getattr(importlib.import_module(module), function)(cfg, batch, size, device)
        return PreparedCase(prepared.run, prepared.items, cleanup)
    num_classes = int(cfg.model.decode_head.num_classes)
    train = spec.kind in (BACKBONE, TRAIN_STEP)
    data = random_batch(batch, size, num_classes, with_masks=not train)
    model = build_model(cfg, device)
    if spec.kind == TRAIN_STEP:
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg, device, amp=spec.amp_dtype is not None,
                                            dtype=spec.amp_dtype)
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
        amp = getattr(torch, spec.amp_dtype) if spec.amp_dtype else None

        def run():
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
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
    cases = preset_cases(preset)
    for spec in cases:
        if spec.name == name:
            return spec
    raise KeyError(f'no case {name!r} in preset {preset!r}: choose from '
                   f'{[s.name for s in cases]}')


def select_cases(preset: str, names: Optional[List[str]]) -> Tuple[CaseSpec, ...]:
    """The cases named (any of the preset's), or without names its default set: every case
    but those marked ``on_request``."""
    cases = preset_cases(preset)
    if not names:
        return tuple(case for case in cases if not case.on_request)
    return tuple(case_by_name(preset, n) for n in names)
