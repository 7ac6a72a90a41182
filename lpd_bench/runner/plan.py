"""The run plan of ``lpd-bench run``: the registered methods (:mod:`lpd_bench.methods`), their
ablations, and the runs these need.

A run is one configuration (config file + ``--cfg-options``) trained and tested with one seed.
Ablations reuse runs: every ablation point is a set of overrides of a method's default config,
and two points with the same overrides are the same run (e.g. LPD k=10, lambda=0.5 is the LPD
default, the k=10 point of the prototype sweep and the lambda=0.5 point of the diversity sweep),
trained once and listed under every group it belongs to (``RunSpec.memberships``).
Check groups (``MethodSpec.checks``, e.g. LPD's ``power``) are planned like ablation groups when
named, and left out of ``--all``.
"""
import json
from dataclasses import dataclass, field
from typing import Optional

from ..methods import (MAIN_GROUP, AblationPoint, ablation_groups, check_groups, get_method,
                       method_names)

__all__ = ['MAIN_GROUP', 'RunSpec', 'build_plan', 'selected_points']


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


def build_plan(names=(), all_runs=False, seeds=(0, ), preset='cpu', data_root=None,
               extra_options=None) -> list:
    """The deduplicated list of runs, seed-major so that every method gets seed 0 first.

    ``extra_options`` (e.g. a shorter schedule) are added to every run's cfg-options.
    """
    points = selected_points(names, all_runs)
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
                                      method.config(preset), overrides, data_root)
                plan.append(by_key[key])
            membership = {'name': point.group, 'value': point.value}
            if membership not in by_key[key].memberships:
                by_key[key].memberships.append(membership)
    return plan

