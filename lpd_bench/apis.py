"""What the command-line tools share, as library code: config loading with the ``--cfg-options``
aliases, the dataset check, distributed set-up on CPU and the runner.

``tools/train.py``, ``tools/test.py``, ``tools/choose_gating_threshold.py``, PBIP's stage A
(``python -m baselines.pbip.build_bank``), the run snapshots and the benchmark load configs with
:func:`load_config`, so a config means the same thing to all of them.

Config aliases: MMEngine fills a base config's variables in when it parses the file, so
``--cfg-options data_root=X`` alone would only set a top-level key that nothing reads any more.
An alias is a top-level name whose value a setter copies to every place the variable stands
for. A package registers its own with :func:`register_config_alias` (lpd_bench registers
``data_root``, ``backbone_checkpoint``, ``encoder_checkpoint`` and ``schedule_fraction`` below;
a baseline registers its own, e.g. PBIP's ``bank_path`` in
``baselines/pbip/clustered_prototypes.py``). Configs name the registering packages in
``custom_imports``, which :func:`load_config` imports before it applies the aliases.
"""
import argparse
import math
import os
import os.path as osp
from datetime import timedelta
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional

from mmengine.config import Config, DictAction

#: The dataloaders of a config, in the order train, val, test.
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

#: Alias name -> setter ``(cfg, value) -> None``; filled by :func:`register_config_alias`.
CONFIG_ALIASES: Dict[str, Callable] = {}


def register_config_alias(name: str) -> Callable:
    """Decorator: ``setter(cfg, value)`` handles ``--cfg-options <name>=value``.

    The setter is called by :func:`load_config` after the other options are merged; it sets
    ``cfg[name]`` and copies the value to where it is used. Registering another setter under a
    taken name is an error (registering the same function again, e.g. on a module reload, is not).
    """
    def decorator(setter: Callable) -> Callable:
        known = CONFIG_ALIASES.get(name)
        if known is not None and _qualname(known) != _qualname(setter):
            raise KeyError(f'config alias {name!r} is already registered by {_qualname(known)}')
        CONFIG_ALIASES[name] = setter
        return setter
    return decorator


def _qualname(fn) -> str:
    return f'{fn.__module__}.{fn.__qualname__}'


def leaf_datasets(dataset: Mapping) -> Iterator[dict]:
    """Yield the dataset configs that read data: ``dataset`` itself or those a wrapper holds."""
    if dataset.get('dataset') is not None:
        yield from leaf_datasets(dataset['dataset'])
    elif dataset.get('datasets') is not None:
        for inner in dataset['datasets']:
            yield from leaf_datasets(inner)
    else:
        yield dataset


def dataloader_datasets(cfg: Config, names: Iterable[str] = DATALOADERS) -> Iterator[dict]:
    """Yield the leaf dataset configs of the named dataloaders present in ``cfg``."""
    for name in names:
        loader = cfg.get(name)
        if loader is not None:
            yield from leaf_datasets(loader['dataset'])


@register_config_alias('data_root')
def set_data_root(cfg: Config, data_root) -> None:
    """Point every dataloader's dataset (wrapped ones included) at ``data_root``, and a refiner
    encoder backbone or a backbone ``init_cfg`` that is pretrained on the train split (it has a
    ``data_root``) at it too."""
    cfg.data_root = data_root
    for dataset in dataloader_datasets(cfg):
        dataset['data_root'] = data_root
    refiner = cfg.get('model', {}).get('decode_head', {}).get('refiner_loss')
    backbone = (refiner or {}).get('encoder', {}).get('backbone')
    if backbone is not None and 'data_root' in backbone:
        backbone['data_root'] = data_root
    init = (cfg.get('model', {}).get('backbone') or {}).get('init_cfg')
    if isinstance(init, dict) and 'data_root' in init:  # pretrained on the train split
        init['data_root'] = data_root


@register_config_alias('encoder_checkpoint')
def set_encoder_checkpoint(cfg: Config, checkpoint) -> None:
    """Set the weights file of the refiner's frozen encoder."""
    refiner = cfg.model.get('decode_head', {}).get('refiner_loss')
    if refiner is None:
        raise ValueError(f'encoder_checkpoint={checkpoint!r} given, but the config has no '
                         'model.decode_head.refiner_loss (refiner off)')
    cfg.encoder_checkpoint = checkpoint
    refiner['encoder']['checkpoint'] = checkpoint


@register_config_alias('backbone_checkpoint')
def set_backbone_checkpoint(cfg: Config, checkpoint) -> None:
    """Initialise the MiT backbone from an official SegFormer ImageNet checkpoint (or not: None)."""
    cfg.backbone_checkpoint = checkpoint
    cfg.model.backbone['init_cfg'] = (None if checkpoint is None else
                                      dict(type='PretrainedMiT', checkpoint=checkpoint))


def scaled_iters(iters: int, fraction: float) -> int:
    """``iters * fraction`` rounded half up, at least 1 (0 stays 0: a scheduler's ``begin``)."""
    if iters <= 0:
        return int(iters)
    return max(1, int(math.floor(iters * fraction + 0.5)))


@register_config_alias('schedule_fraction')
def set_schedule_fraction(cfg: Config, fraction) -> None:
    """Train for ``fraction`` of the config's iteration schedule (0 < fraction <= 1), the whole
    schedule shrunk in proportion: ``train_cfg.max_iters``, the ``begin``/``end`` of every
    iteration-based ``param_scheduler`` entry (``by_epoch=False``; epoch-based entries are left
    alone), ``train_cfg.val_interval``, ``default_hooks.checkpoint.interval`` (when positive) and
    its ``save_best_after`` (when an int), and ``model.decode_head.loss_warmup_iters`` (when
    present) are multiplied by it, rounded half up, at least 1 (:func:`scaled_iters`). The
    values given in the same ``--cfg-options`` are scaled too (aliases are applied last).
    A control of the benchmark's power check (LPD's ``power`` check group, docs/protocol.md)."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = float('nan')
    if isinstance(fraction, bool) or not 0 < value <= 1:
        raise ValueError(f'schedule_fraction={fraction!r}: expected a number in (0, 1] (the '
                         'fraction of the training schedule to run)')
    train_cfg = cfg.get('train_cfg') or {}
    if not isinstance(train_cfg.get('max_iters'), int):
        raise ValueError(f'schedule_fraction={fraction!r} needs an iteration-based schedule '
                         f'(train_cfg.max_iters), got train_cfg={dict(train_cfg)!r}')
    cfg.schedule_fraction = value
    train_cfg['max_iters'] = scaled_iters(train_cfg['max_iters'], value)
    if isinstance(train_cfg.get('val_interval'), int):
        train_cfg['val_interval'] = scaled_iters(train_cfg['val_interval'], value)
    schedulers = cfg.get('param_scheduler') or []
    for scheduler in [schedulers] if isinstance(schedulers, Mapping) else schedulers:
        if scheduler.get('by_epoch', True):
            continue  # given in epochs
        for key in ('begin', 'end'):
            if isinstance(scheduler.get(key), int):
                scheduler[key] = scaled_iters(scheduler[key], value)
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    for key in ('interval', 'save_best_after'):
        if isinstance(checkpoint.get(key), int) and not isinstance(checkpoint[key], bool):
            checkpoint[key] = scaled_iters(checkpoint[key], value)
    head = (cfg.get('model') or {}).get('decode_head') or {}
    if isinstance(head, Mapping) and isinstance(head.get('loss_warmup_iters'), int):
        head['loss_warmup_iters'] = scaled_iters(head['loss_warmup_iters'], value)


def import_custom_modules(cfg: Config) -> None:
    """Import the config's ``custom_imports`` (the packages that register its components and
    its config aliases); ``Config.fromfile`` did it already for a file, this covers any config."""
    custom = cfg.get('custom_imports')
    if custom:
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**custom)


def apply_cfg_options(cfg: Config, cfg_options: Optional[Mapping] = None) -> Config:
    """Merge ``cfg_options`` into ``cfg`` in place: plain keys first, then each registered alias
    through its setter (in the order given). Imports ``custom_imports`` first."""
    import_custom_modules(cfg)
    options = dict(cfg_options or {})
    aliases = {name: options.pop(name) for name in list(options) if name in CONFIG_ALIASES}
    if options:
        cfg.merge_from_dict(options)
    for name, value in aliases.items():
        CONFIG_ALIASES[name](cfg, value)
    return cfg


def parse_cfg_option_values(options: Mapping) -> dict:
    """``{key: value}`` with every string value read as ``--cfg-options key=value`` reads it
    (mmengine ``DictAction``: ``'2'`` -> 2, ``'[1,2]'`` -> [1, 2], ``'None'`` -> None), so that code
    loading a config in-process sees what the tools see; other values are kept."""
    if not any(isinstance(v, str) for v in options.values()):
        return dict(options)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    texts = [f'{key}={value}' for key, value in options.items() if isinstance(value, str)]
    parsed = parser.parse_args(['--cfg-options', *texts]).cfg_options
    return {key: parsed[key] if isinstance(value, str) else value
            for key, value in options.items()}


def load_config(path: str, cfg_options: Optional[Mapping] = None, *,
                work_dir: Optional[str] = None, launcher: Optional[str] = None,
                init_scope: bool = False) -> Config:
    """The config file ``path`` with ``cfg_options`` merged and the aliases propagated.

    Args:
        path: config file.
        cfg_options: ``{key: value}`` as ``--cfg-options`` gives it (mmengine ``DictAction``);
            registered aliases (:data:`CONFIG_ALIASES`) go through their setters.
        work_dir: sets ``cfg.work_dir`` when given (the config's own is kept otherwise).
        launcher: sets ``cfg.launcher`` when given.
        init_scope: also make the config's ``default_scope`` (default ``'mmseg'``) the current
            registry scope, for code that builds models or datasets itself instead of through a
            Runner (which does it). Off by default.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist')
    cfg = apply_cfg_options(Config.fromfile(path), cfg_options)
    if launcher is not None:
        cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    if init_scope:
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, as MMSegmentation's tools."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


# ----------------------------------------------------------------------- command-line tools


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of the tools that load a config (as MMSegmentation's tools/train.py and test.py)."""
    parser.add_argument('--work-dir', help='directory for logs, checkpoints and results')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (e.g. data_root=PATH, randomness.seed=0, '
        'model.decode_head.prototypes.num_per_class=3); the registered aliases (data_root, '
        'backbone_checkpoint, encoder_checkpoint, schedule_fraction and those of the baselines, '
        'e.g. PBIP\'s bank_path) are copied to every place the variable is used')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not check the dataset folders before starting')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; exports LOCAL_RANK for the launchers that pass it as an argument."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(getattr(args, 'local_rank', 0)))
    return args


def load_config_from_args(args: argparse.Namespace) -> Config:
    """:func:`load_config` for a tool's arguments (``config``, ``cfg_options`` and, when present,
    ``work_dir`` and ``launcher``). work_dir: ``--work-dir``, else the config's, else
    ``./work_dirs/<config name>``."""
    cfg = load_config(args.config, args.cfg_options, work_dir=getattr(args, 'work_dir', None),
                      launcher=getattr(args, 'launcher', None) or 'none')
    if cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    return cfg


def dataset_layout(dataset: Mapping):
    """The ``lpd_bench.data.layouts.DatasetLayout`` a dataset config reads: its type's ``LAYOUT``
    (``BCSSWSSSDataset``: BCSS-WSSS, ``LUADHistoSegDataset``: LUAD-HistoSeg); None for a type
    without one."""
    from mmseg.registry import DATASETS

    import lpd_bench  # noqa: F401  (registers the dataset types)
    kind = dataset.get('type')
    cls = kind if isinstance(kind, type) else DATASETS.get(kind) if kind else None
    return getattr(cls, 'LAYOUT', None)


def check_data(cfg: Config, loader_names: Iterable[str]) -> None:
    """Run lpd_bench's dataset check on every (data_root, split) the named dataloaders read.

    Each dataset is checked against the layout its type expects (``dataset_layout``): a
    LUAD-HistoSeg config pointed at a BCSS-WSSS folder (or the reverse) fails here, also when
    only val/test are read (the folder's layout is then told from its train names).
    Exits with the full list of problems if there is any. ``data_root=None`` is the default
    synthetic set of that layout (generated here on first use).
    """
    from lpd_bench.data.layouts import DEFAULT_LAYOUT
    from lpd_bench.data.synthetic import default_synthetic_root
    from lpd_bench.data.validation import check_dataset
    splits_by_root = {}
    for dataset in dataloader_datasets(cfg, loader_names):
        if 'split' in dataset:
            key = (dataset.get('data_root'), dataset_layout(dataset))
            splits_by_root.setdefault(key, []).append(dataset['split'])
    for (root, layout), splits in splits_by_root.items():
        splits = tuple(dict.fromkeys(splits))
        folder = (default_synthetic_root(layout=(layout or DEFAULT_LAYOUT).key)
                  if root is None else root)
        problems = layout_mismatch(folder, layout, splits) + check_dataset(
            folder, splits, layout=layout)
        if problems:
            listing = '\n'.join(f'  - {problem}' for problem in problems)
            raise SystemExit(
                f'dataset check failed for data_root={root!r} (splits {", ".join(splits)}'
                f'{"" if layout is None else ", layout " + layout.title}), '
                f'{len(problems)} problem(s):\n{listing}\n'
                '(--skip-data-check starts anyway)')


def layout_mismatch(root, layout, splits) -> list:
    """``[DataProblem]`` when ``splits`` leave out ``train`` (whose check flags names of the other
    layout itself) and the train names at ``root`` are of another layout than ``layout``."""
    from lpd_bench.data.validation import DataProblem, detect_layout
    if layout is None or 'train' in splits:
        return []
    finding = detect_layout(root)
    if finding.source != 'train file names' or finding.mixed or finding.layout == layout:
        return []
    return [DataProblem(str(root), f'holds {finding.layout.title} (from its train file names, '
                        f'e.g. {finding.examples[finding.layout.key]}) but the config\'s dataset '
                        f'expects {layout.title}')]


def init_cpu_distributed(cfg: Config) -> None:
    """Start the process group for a CPU-only distributed run.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device``, which fails without CUDA; with the
    group already started the runner skips it. Only torchrun-style launches (``--launcher
    pytorch``: RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment) are supported on CPU.
    """
    import torch
    import torch.distributed as torch_dist
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    if launcher != 'pytorch':
        raise SystemExit(f'--launcher {launcher} needs CUDA; on CPU use torchrun with '
                         '--launcher pytorch (tools/dist_train.sh)')
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        raise SystemExit(f'env_cfg.dist_cfg.backend={backend!r} cannot run on CPU; use gloo')
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(backend=backend, **dist_cfg)


def build_runner(cfg: Config):
    """The default runner, or ``runner_type`` from the registry (as MMSegmentation's tools);
    starts the CPU process group first when the config's launcher asks for one."""
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS
    init_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def load_model(cfg: Config, checkpoint: str, device: Optional[str] = None):
    """``cfg.model`` built in eval mode on ``device`` (None: CUDA when available, else CPU) with
    the weights of ``checkpoint`` (mmengine's loader: project checkpoints load with
    ``weights_only``, lpd_bench.engine.checkpoint_io)."""
    import torch
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    import lpd_bench  # noqa: F401  (registers the modules and the checkpoint loader)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = MODELS.build(cfg.model).to(device).eval()
    load_checkpoint(model, checkpoint, map_location=device)
    return model


#: ``enable_amp`` / tools/train.py ``--amp-dtype`` values: the autocast dtype of AmpOptimWrapper.
AMP_DTYPES = ('float16', 'bfloat16')


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Switch the optimiser wrapper to AmpOptimWrapper (as MMSegmentation's ``--amp``).

    ``dtype`` ('float16' or 'bfloat16'; None: leave the config's, mmengine's default float16)
    becomes ``optim_wrapper.dtype``, the autocast dtype of the whole model's forward, also when
    the config already uses AmpOptimWrapper (the paper schedule on CUDA). Setting
    ``--cfg-options optim_wrapper.dtype=bfloat16`` on a config that already uses AmpOptimWrapper is
    the same. bfloat16 keeps fp32's exponent range: the dynamic loss scaling stays on but is not
    needed.
    """
    import logging

    import torch
    from mmengine.logging import print_log
    if dtype is not None and dtype not in AMP_DTYPES:
        raise SystemExit(f'--amp-dtype must be one of {AMP_DTYPES}, got {dtype!r}')
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        if dtype is not None:
            cfg.optim_wrapper.dtype = dtype
        return
    if not torch.cuda.is_available():
        raise SystemExit('--amp needs a CUDA device (AmpOptimWrapper does not run on CPU)')
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise SystemExit('--amp is only supported when optim_wrapper.type is OptimWrapper, got '
                         f'{cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    if dtype is not None:
        cfg.optim_wrapper.dtype = dtype


#: The test metric JSON's name in the work dir when ``--out`` is not given.
DEFAULT_METRICS_FILE = 'test_metrics.json'


def set_metrics_file(cfg: Config, out: Optional[str]) -> str:
    """Make the test evaluator (one WSSSMetric) write its JSON to ``out``; without ``out``, the
    evaluator's own ``output_file`` if set, else ``<work_dir>/test_metrics.json``. Returns it."""
    evaluator = cfg.test_evaluator
    if not isinstance(evaluator, dict):
        raise SystemExit('tools/test.py expects one test_evaluator (a WSSSMetric dict), got '
                         f'{type(evaluator).__name__}')
    if out is not None or evaluator.get('output_file') is None:
        evaluator['output_file'] = out or osp.join(cfg.work_dir, DEFAULT_METRICS_FILE)
    return evaluator['output_file']


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Draw predictions into ``show_dir`` (as MMSegmentation's ``--show-dir``)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise SystemExit('--show-dir needs default_hooks.visualization (SegVisualizationHook)')
    hook['draw'] = True
    cfg.visualizer['save_dir'] = show_dir
