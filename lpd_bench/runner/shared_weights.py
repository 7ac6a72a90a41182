"""Weights that every run of a plan starts from, prepared once in the runner's own process.

The CPU preset's MiT starts from a backbone pretrained once per dataset
(:class:`~lpd_bench.models.backbone_pretraining.SyntheticPretrainedBackbone`) and, with
``cpu_encoder=pretrained``, its refiner encoder too
(:class:`~lpd_bench.models.encoder_pretraining.SyntheticPretrainedPatchMLP`). Each is cached and
built on first use under a file lock, so with ``--jobs N`` the first N runs would all wait while
one of them builds it with its share of the cores (``cores // N`` threads). The executor calls
:func:`prepare_shared_weights` before it starts the runs: for each distinct (config, options) of
the runs still to do it loads the config as the tools do and fills the caches, with every thread
of this process; the runs then only load the files. Nothing is prepared for a config that asks for
neither (or that is not found under the tools' folder, as with the tests' fake tools); a failure
is reported and left to the runs, which build the weights themselves as before.
"""
import json
import time
from pathlib import Path
from typing import Callable, Iterable, Optional


def _plain(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)


def _key(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def weights_to_prepare(cfg) -> list:
    """``[(kind, config dict)]`` of the shared weights config ``cfg`` asks for: ``('backbone',
    cfg.model.backbone)`` with a ``SyntheticPretrainedBackbone`` init_cfg, ``('encoder', <refiner
    encoder backbone>)`` when it is a ``SyntheticPretrainedPatchMLP``."""
    from ..models.backbone_pretraining import synthetic_init_cfg
    from ..models.encoder_pretraining import SyntheticPretrainedPatchMLP
    wanted = []
    if synthetic_init_cfg(cfg) is not None:
        wanted.append(('backbone', _plain(cfg.model.backbone)))
    refiner = (cfg.get('model', {}).get('decode_head') or {}).get('refiner_loss') or {}
    encoder = (refiner.get('encoder') or {}).get('backbone')
    if encoder is not None and encoder.get('type') == SyntheticPretrainedPatchMLP.__name__:
        wanted.append(('encoder', _plain(encoder)))
    return wanted


def prepare_weights(kind: str, module_cfg: dict, progress: Callable[[str], None]) -> Path:
    """Build (or find) the cached weights of one ``weights_to_prepare`` entry; their path."""
    from mmseg.registry import MODELS
    if kind == 'backbone':
        from ..models.backbone_pretraining import SyntheticPretrainedBackbone
        init = dict(module_cfg['init_cfg'])
        init.pop('type')
        module = MODELS.build(dict(module_cfg, init_cfg=None))
        return SyntheticPretrainedBackbone(**init).path(module, progress=progress)
    return MODELS.build(module_cfg).path(progress=progress)  # what its init_weights loads


def prepare_shared_weights(configs: Iterable, progress: Callable[[str], None],
                           cwd: Optional[Path] = None) -> dict:
    """Fill the weight caches the configs ask for, each once.

    Args:
        configs: ``(config path, cfg_options)`` pairs (duplicates are loaded once); a relative
            path is taken under ``cwd``, and a missing file is skipped.
        progress: receives the lines to show.
    Returns:
        ``{'seconds': ..., 'built': [{'kind', 'path', 'seconds'}, ...], 'failed': [...]}``.
    """
    start = time.perf_counter()
    done, loaded, record = set(), set(), {'built': [], 'failed': []}
    for config, options in configs:
        path = Path(cwd or '.') / config
        key = (str(path), _key(options or {}))
        if key in loaded or not path.is_file():
            continue
        loaded.add(key)
        try:
            from mmengine.registry import init_default_scope

            from ..apis import load_config, parse_cfg_option_values
            # the plan's option values are the strings the tools get on their command line
            cfg = load_config(str(path), parse_cfg_option_values(options or {}))
            init_default_scope(cfg.get('default_scope', 'mmseg'))
            wanted = weights_to_prepare(cfg)
        except Exception as error:  # the runs will report the config's problem
            record['failed'].append({'config': str(config), 'error': f'{type(error).__name__}: '
                                     f'{error}'})
            continue
        for kind, module_cfg in wanted:
            if (kind, _key(module_cfg)) in done:
                continue
            done.add((kind, _key(module_cfg)))
            began = time.perf_counter()
            try:
                weights = prepare_weights(kind, module_cfg, progress)
            except Exception as error:
                progress(f'shared weights: could not prepare the {kind} of {config} '
                         f'({type(error).__name__}: {error}); the runs will build it')
                record['failed'].append({'config': str(config), 'kind': kind,
                                         'error': f'{type(error).__name__}: {error}'})
                continue
            seconds = time.perf_counter() - began
            record['built'].append({'kind': kind, 'path': str(weights),
                                    'seconds': round(seconds, 1)})
            progress(f'shared weights: {kind} ready ({seconds:.1f} s): {weights}')
    record['seconds'] = round(time.perf_counter() - start, 1)
    return record
