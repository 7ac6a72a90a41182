"""What tools/train.py and tools/test.py share: arguments, config loading with the command-line
overrides, the dataset check, and distributed setup on CPU.

Importing this module puts the repository root on ``sys.path`` so that the tools run from a
checkout without installing lpd-bench (configs import ``lpd_bench`` and ``baselines``).
"""
import argparse
import os
import os.path as osp
import sys
from datetime import timedelta

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import torch.distributed as torch_dist  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmseg.registry import RUNNERS  # noqa: E402

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of both tools (as in MMSegmentation's tools/train.py and tools/test.py)."""
    parser.add_argument('--work-dir', help='directory for logs, checkpoints and results')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (e.g. data_root=PATH, randomness.seed=0, '
        'model.decode_head.prototypes.num_per_class=3); data_root, backbone_checkpoint and '
        'encoder_checkpoint and bank_path are copied to every dataloader / the backbone / the '
        'refiner encoder / the PBIP prototypes')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not check the dataset folders before starting')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def leaf_datasets(dataset: dict):
    """Yield the dataset configs that read data: ``dataset`` itself or those a wrapper holds."""
    if dataset.get('dataset') is not None:
        yield from leaf_datasets(dataset['dataset'])
    elif dataset.get('datasets') is not None:
        for inner in dataset['datasets']:
            yield from leaf_datasets(inner)
    else:
        yield dataset


def dataloader_datasets(cfg: Config, names=DATALOADERS):
    """Yield the leaf dataset configs of the named dataloaders present in ``cfg``."""
    for name in names:
        loader = cfg.get(name)
        if loader is not None:
            yield from leaf_datasets(loader['dataset'])


def set_data_root(cfg: Config, data_root) -> None:
    """Point every dataloader's dataset (wrapped ones included) at ``data_root``."""
    cfg.data_root = data_root
    for dataset in dataloader_datasets(cfg):
        dataset['data_root'] = data_root


def set_encoder_checkpoint(cfg: Config, checkpoint) -> None:
    """Set the weights file of the refiner's frozen encoder."""
    refiner = cfg.model.get('decode_head', {}).get('refiner_loss')
    if refiner is None:
        raise ValueError(f'encoder_checkpoint={checkpoint!r} given, but the config has no '
                         'model.decode_head.refiner_loss (refiner off)')
    cfg.encoder_checkpoint = checkpoint
    refiner['encoder']['checkpoint'] = checkpoint


def set_backbone_checkpoint(cfg: Config, checkpoint) -> None:
    """Initialise the MiT backbone from an official SegFormer ImageNet checkpoint (or not: None)."""
    cfg.backbone_checkpoint = checkpoint
    cfg.model.backbone['init_cfg'] = (None if checkpoint is None else
                                      dict(type='PretrainedMiT', checkpoint=checkpoint))


def set_bank_path(cfg: Config, bank_path) -> None:
    """Point the PBIP baseline's ``ClusteredPrototypes`` at a prototype bank file."""
    from baselines.pbip import propagate_bank_path
    prototypes = cfg.model.get('decode_head', {}).get('prototypes', {})
    if prototypes.get('type') != 'ClusteredPrototypes':
        raise ValueError(f'bank_path={bank_path!r} given, but the config\'s prototypes are '
                         f'{prototypes.get("type")!r}, not ClusteredPrototypes')
    cfg.bank_path = bank_path
    propagate_bank_path(cfg)


#: Top-level config variables that stand for settings deeper in the config, and their setters.
#: MMEngine fills a base config's variables in when it parses the file, so ``--cfg-options
#: data_root=X`` alone would change nothing: the tools copy such an override to every place the
#: variable stands for.
ALIASES = dict(data_root=set_data_root, encoder_checkpoint=set_encoder_checkpoint,
               backbone_checkpoint=set_backbone_checkpoint, bank_path=set_bank_path)


def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options`` merged (aliases propagated), launcher and work_dir set.

    work_dir: ``--work-dir``, else the config's, else ``./work_dirs/<config name>``.
    """
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    options = dict(args.cfg_options or {})
    aliases = {name: options.pop(name) for name in ALIASES if name in options}
    if options:
        cfg.merge_from_dict(options)
    for name, value in aliases.items():
        ALIASES[name](cfg, value)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def check_data(cfg: Config, loader_names) -> None:
    """Run lpd_bench's dataset check on every (data_root, split) the named dataloaders read.

    Exits with the full list of problems if there is any. ``data_root=None`` is the default
    synthetic set (generated here on first use).
    """
    from lpd_bench.data.synthetic import default_synthetic_root
    from lpd_bench.data.validation import check_dataset
    splits_by_root = {}
    for dataset in dataloader_datasets(cfg, loader_names):
        if 'split' in dataset:
            splits_by_root.setdefault(dataset.get('data_root'), []).append(dataset['split'])
    for root, splits in splits_by_root.items():
        splits = tuple(dict.fromkeys(splits))
        problems = check_dataset(default_synthetic_root() if root is None else root, splits)
        if problems:
            listing = '\n'.join(f'  - {problem}' for problem in problems)
            raise SystemExit(
                f'dataset check failed for data_root={root!r} (splits {", ".join(splits)}), '
                f'{len(problems)} problem(s):\n{listing}\n'
                '(--skip-data-check starts anyway)')


def init_cpu_distributed(cfg: Config) -> None:
    """Start the process group for a CPU-only distributed run.

    MMEngine's ``init_dist`` calls ``torch.cuda.set_device``, which fails without CUDA; with the
    group already started the runner skips it. Only torchrun-style launches (``--launcher
    pytorch``: RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment) are supported on CPU.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    if cfg.launcher != 'pytorch':
        raise SystemExit(f'--launcher {cfg.launcher} needs CUDA; on CPU use torchrun with '
                         '--launcher pytorch (tools/dist_train.sh)')
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        raise SystemExit(f'env_cfg.dist_cfg.backend={backend!r} cannot run on CPU; use gloo')
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(backend=backend, **dist_cfg)


def build_runner(cfg: Config) -> Runner:
    """The default runner, or ``runner_type`` from the registry (as MMSegmentation's tools)."""
    init_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
