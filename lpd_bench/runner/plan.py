"""The run plan of ``lpd-bench run``: methods, ablations (DESIGN.md section 7) and their runs.

A run is one configuration (config file + ``--cfg-options``) trained and tested with one seed.
Ablations reuse runs: every ablation point is a set of overrides of a method's default config,
and two points with the same overrides are the same run (e.g. LPD k=10, lambda=0.5 is the LPD
default, the k=10 point of the prototype sweep and the lambda=0.5 point of the diversity sweep),
trained once and listed under every group it belongs to (``RunSpec.memberships``).

Learnable vs clustered prototypes is compared at k=3 (the public PBIP code's k, also a point of
the LPD k sweep): LPD k=3; LPD k=3 without the diversity loss (the same losses as PBIP, so the
prototype source is the only difference); PBIP k=3 with its frozen k-means bank.
"""
import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

HEAD = 'model.decode_head'
NUM_PER_CLASS = f'{HEAD}.prototypes.num_per_class'
DIVERSITY = f'{HEAD}.diversity_loss'
DIVERSITY_WEIGHT = f'{DIVERSITY}.loss_weight'
DIVERSITY_VARIANT = f'{DIVERSITY}.variant'
REFINER = f'{HEAD}.refiner_loss'
BANK_PATH = f'{HEAD}.prototypes.bank_path'

#: Config file stem of each method; the preset picks the suffix.
METHODS = ('cam', 'pbip', 'lpd')
PRESET_SUFFIX = {'cpu': 'synth_cpu', 'paper': 'bcss'}
METHOD_LABELS = {'cam': 'CAM', 'pbip': 'PBIP-style (clustered, 2-stage)', 'lpd': 'LPD'}
#: Values of the ablation knobs in each method's default config: an ablation point that sets a
#: knob to its default is the default run (this is what deduplicates the sweeps).
METHOD_DEFAULTS = {
    'cam': {NUM_PER_CLASS: 1},
    'pbip': {NUM_PER_CLASS: 3},
    'lpd': {NUM_PER_CLASS: 10, DIVERSITY_WEIGHT: 0.5, DIVERSITY_VARIANT: 'corrected'},
}


@dataclass(frozen=True)
class AblationPoint:
    """One row of an ablation: ``method`` with ``overrides`` is what ``group`` calls ``value``."""
    group: str
    value: object
    method: str
    overrides: tuple = ()  # ((cfg key, value), ...)


def _lpd(group, value, *overrides):
    return AblationPoint(group, value, 'lpd', tuple(overrides))


#: Ablation groups of DESIGN.md section 7, in report order. lambda=0 turns the loss off
#: (diversity_loss=None): the same objective as weight 0 without computing the loss.
ABLATIONS = {
    'num_per_class': tuple(_lpd('num_per_class', k, (NUM_PER_CLASS, k)) for k in (1, 3, 5, 10)),
    'diversity_weight': tuple(
        _lpd('diversity_weight', w, (DIVERSITY, None) if w == 0 else (DIVERSITY_WEIGHT, w))
        for w in (0, 0.1, 0.25, 0.5, 1)),
    'mask_refiner': (_lpd('mask_refiner', 'with'),
                     _lpd('mask_refiner', 'without', (REFINER, None))),
    'diversity_form': (_lpd('diversity_form', 'corrected'),
                       _lpd('diversity_form', 'public', (DIVERSITY_VARIANT, 'public'))),
    'prototype_source': (
        _lpd('prototype_source', 'learnable (LPD, k=3)', (NUM_PER_CLASS, 3)),
        _lpd('prototype_source', 'learnable, no diversity (k=3)', (NUM_PER_CLASS, 3),
             (DIVERSITY, None)),
        AblationPoint('prototype_source', 'clustered (PBIP, k=3)', 'pbip'),
    ),
}
MAIN_GROUP = 'main'


@dataclass
class RunSpec:
    """One planned run; ``cfg_options`` excludes the seed and the bank path (added at run time)."""
    run_id: str
    method: str
    seed: int
    preset: str
    config: str
    cfg_options: dict
    data_root: Optional[str]
    memberships: list = field(default_factory=list)  # [{'name': group, 'value': value}, ...]

    @property
    def needs_bank(self) -> bool:
        return self.method == 'pbip'

    @property
    def num_per_class(self) -> int:
        return int(self.cfg_options.get(NUM_PER_CLASS, METHOD_DEFAULTS[self.method][NUM_PER_CLASS]))

    def bank_key(self) -> str:
        """Name of the prototype bank this run uses: one per config + cfg-options (encoder, k,
        data) and seed."""
        ident = json.dumps([self.config, sorted(self.cfg_options.items()), self.seed],
                           default=str)
        digest = hashlib.sha1(ident.encode()).hexdigest()[:8]
        return f'{self.method}_k{self.num_per_class}_seed{self.seed}_{digest}'


def _tag(key, value) -> str:
    """Short run-id fragment of one override."""
    if key == NUM_PER_CLASS:
        return f'k{value}'
    if key == DIVERSITY_WEIGHT:
        return f'div{value:g}'
    if key == DIVERSITY and value is None:
        return 'nodiv'
    if key == DIVERSITY_VARIANT:
        return f'div{value}'
    if key == REFINER and value is None:
        return 'norefiner'
    raise ValueError(f'no run-id tag for override {key}={value!r}')


def config_path(method: str, preset: str) -> str:
    if preset not in PRESET_SUFFIX:
        raise ValueError(f'unknown preset {preset!r}; expected one of {sorted(PRESET_SUFFIX)}')
    return f'configs/{method}_{PRESET_SUFFIX[preset]}.py'


def selected_points(names, all_runs: bool) -> list:
    """Ablation points (methods are group 'main') chosen by names or ``--all``."""
    known = list(METHODS) + list(ABLATIONS)
    if all_runs:
        names = known
    elif not names:
        raise ValueError('name at least one method or ablation group, or pass --all '
                         f'(known: {", ".join(known)})')
    points = []
    for name in names:
        if name in METHODS:
            points.append(AblationPoint(MAIN_GROUP, METHOD_LABELS[name], name))
        elif name in ABLATIONS:
            points.extend(ABLATIONS[name])
        else:
            raise ValueError(f'unknown method or ablation group {name!r}; '
                             f'known: {", ".join(known)}')
    return points


def build_plan(names=(), all_runs=False, seeds=(0, ), preset='cpu', data_root=None,
               extra_options=None) -> list:
    """The deduplicated list of runs, seed-major so that every method gets seed 0 first.

    ``extra_options`` (e.g. a shorter schedule) are added to every run's cfg-options.
    """
    points = selected_points(names, all_runs)
    plan, by_key = [], {}
    for seed in seeds:
        for point in points:
            defaults = METHOD_DEFAULTS[point.method]
            overrides = {k: v for k, v in point.overrides if k not in defaults or defaults[k] != v}
            overrides.update(extra_options or {})
            if data_root is not None:
                overrides['data_root'] = data_root
            key = (point.method, seed, json.dumps(sorted(overrides.items()), default=str))
            if key not in by_key:
                tags = [_tag(k, v) for k, v in overrides.items()
                        if k != 'data_root' and k not in (extra_options or {})]
                run_id = '__'.join([point.method, *tags, f'seed{seed}'])
                by_key[key] = RunSpec(run_id, point.method, seed, preset,
                                      config_path(point.method, preset), overrides, data_root)
                plan.append(by_key[key])
            membership = {'name': point.group, 'value': point.value}
            if membership not in by_key[key].memberships:
                by_key[key].memberships.append(membership)
    return plan
