"""The run plan of ``lpd-bench run``: the registered methods (:mod:`lpd_bench.methods`), their
ablations, and the runs these need.

A run is one configuration (config file + ``--cfg-options``) trained and tested with one seed.
Ablations reuse runs: every ablation point is a set of overrides of a method's default config,
and two points with the same overrides are the same run (e.g. LPD k=10, lambda=0.5 is the LPD
default, the k=10 point of the prototype sweep and the lambda=0.5 point of the diversity sweep),
trained once and listed under every group it belongs to (``RunSpec.memberships``).
Check groups (``MethodSpec.checks``, e.g. LPD's ``power``) are planned like ablation groups when
named, and left out of ``--all``.

A plan is for one data set (``dataset``: 'bcss' BCSS-WSSS, 'luad' LUAD-HistoSeg) and preset: each
run uses its method's config for both (``MethodSpec.config``); the points of a method without one
are left out (:func:`methods_without_config` names them). Run ids do not name the data set: plans
of different data sets go to different work dirs (``lpd-bench run --dataset``), and a result
records its ``dataset``.

With ``stage2`` (``lpd-bench run`` unless ``--no-stage2``), each method's main run is followed by
a stage-2 run that depends on it (:mod:`lpd_bench.stage2.runs`).
"""
import json
from dataclasses import dataclass, field
from typing import Optional

from ..methods import (DATASETS, DEFAULT_DATASET, MAIN_GROUP, PRESETS, AblationPoint,
                       ablation_groups, check_groups, get_method, method_names)

__all__ = ['MAIN_GROUP', 'RunSpec', 'build_plan', 'methods_without_config', 'selected_points']


@dataclass
class RunSpec:
    """One planned run; ``cfg_options`` excludes the seed and the pre-stages' outputs (added at
    run time)."""
    run_id: str
    method: str
    seed: int
    preset: str
    config: str
    cfg_options: dict
    data_root: Optional[str]
    memberships: list = field(default_factory=list)  # [{'name': group, 'value': value}, ...]
    dataset: str = DEFAULT_DATASET  # the data set the config reads (lpd_bench.methods.DATASETS)
    stage: int = 1  # 2: a second-stage run (lpd_bench.stage2.runs)
    depends_on: Optional[str] = None  # run id that must be done first (a stage-2 run's stage 1)

    @property
    def spec(self):
        """The method's :class:`lpd_bench.methods.MethodSpec`."""
        return get_method(self.method)


def selected_points(names, all_runs: bool) -> list:
    """Ablation points (methods are group 'main') chosen by names or ``--all`` (every method and
    ablation group; check groups only when named)."""
    groups = ablation_groups()
    checks = check_groups()
    known = list(method_names()) + list(groups) + list(checks)
    if all_runs:
        names = list(method_names()) + list(groups)
    elif not names:
        raise ValueError('name at least one method or ablation group, or pass --all '
                         f'(known: {", ".join(known)})')
    points = []
    for name in names:
        if name in method_names():
            points.append(AblationPoint(MAIN_GROUP, get_method(name).label, name))
        elif name in groups or name in checks:
            points.extend(groups.get(name) or checks[name])
        else:
            raise ValueError(f'unknown method, ablation or check group {name!r}; '
                             f'known: {", ".join(known)}')
    return points


def methods_without_config(names=(), all_runs=False, preset='cpu',
                           dataset=DEFAULT_DATASET) -> list:
    """The methods of the selected points that have no config for ``dataset`` and ``preset``
    (left out of :func:`build_plan`'s plan), in table order."""
    methods = dict.fromkeys(p.method for p in selected_points(names, all_runs))
    return [m for m in methods if not get_method(m).has_config(preset, dataset)]


def build_plan(names=(), all_runs=False, seeds=(0, ), preset='cpu', data_root=None,
               extra_options=None, dataset=DEFAULT_DATASET, stage2=False) -> list:
    """The deduplicated list of runs, seed-major so that every method gets seed 0 first.

    ``extra_options`` (e.g. a shorter schedule) are added to every run's cfg-options. Each run
    uses its method's config for ``dataset`` and ``preset``; the points of methods without one
    are left out (:func:`methods_without_config`). ``stage2``: each main run of a method with a
    second stage is followed, after the seed's other runs, by its stage-2 run
    (:mod:`lpd_bench.stage2.runs`; it gets the extra options every config has).
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; expected one of {list(PRESETS)}')
    if dataset not in DATASETS:
        raise ValueError(f'unknown dataset {dataset!r}; expected one of {list(DATASETS)}')
    points = [p for p in selected_points(names, all_runs)
              if get_method(p.method).has_config(preset, dataset)]
    plan, by_key = [], {}
    for seed in seeds:
        for point in points:
            method = get_method(point.method)
            defaults = method.defaults
            overrides = {k: v for k, v in point.overrides if k not in defaults or defaults[k] != v}
            overrides.update(extra_options or {})
            if data_root is not None:
                overrides['data_root'] = data_root
            key = (point.method, seed, json.dumps(sorted(overrides.items()), default=str))
            if key not in by_key:
                tags = [method.tag(k, v) for k, v in overrides.items()
                        if k != 'data_root' and k not in (extra_options or {})]
                run_id = '__'.join([point.method, *tags, f'seed{seed}'])
                by_key[key] = RunSpec(run_id, point.method, seed, preset,
                                      method.config(preset, dataset), overrides, data_root,
                                      dataset=dataset)
                plan.append(by_key[key])
            membership = {'name': point.group, 'value': point.value}
            if membership not in by_key[key].memberships:
                by_key[key].memberships.append(membership)
    if not stage2:
        return plan
    from ..stage2.runs import has_stage2, stage2_run
    with_stage2 = []
    for seed in seeds:
        runs = [run for run in plan if run.seed == seed]
        with_stage2 += runs + [stage2_run(run, extra_options) for run in runs if has_stage2(run)]
    return with_stage2

