"""The run plan: --all covers every registered method and ablation, shared runs are
deduplicated."""
import json

import pytest

from lpd_bench.methods import (MAIN_GROUP, MethodSpec, ablation_groups, check_groups,
                               group_default, group_titles, register_method, registered_methods,
                               unregister_method)
from lpd_bench.models.spec import (DIVERSITY, DIVERSITY_VARIANT, DIVERSITY_WEIGHT,
                                   FROZEN_PROTOTYPES, NUM_PER_CLASS, REFINER, SCHEDULE_FRACTION)
from lpd_bench.runner.plan import build_plan

METHODS = [spec.name for spec in registered_methods()]


def distinct_configurations() -> int:
    """Runs per seed the registry asks for: one per (method, overrides differing from defaults)."""
    keys = set()
    points = [(spec, ()) for spec in registered_methods()]
    points += [(p.method, p.overrides) for group in ablation_groups().values() for p in group]
    for method, overrides in points:
        spec = method if isinstance(method, MethodSpec) else next(
            s for s in registered_methods() if s.name == method)
        kept = sorted((k, v) for k, v in overrides
                      if k not in spec.defaults or spec.defaults[k] != v)
        keys.add((spec.name, json.dumps(kept, default=str)))
    return len(keys)


def by_id(plan):
    return {spec.run_id: spec for spec in plan}


def test_all_plan_runs_each_configuration_once_per_seed():
    plan = by_id(build_plan(all_runs=True, seeds=[0]))
    assert sorted(plan) == sorted([f'{m}__seed0' for m in METHODS] + [
        'lpd__k1__seed0', 'lpd__k3__seed0', 'lpd__k5__seed0', 'lpd__nodiv__seed0',
        'lpd__div0.1__seed0', 'lpd__div0.25__seed0', 'lpd__div1__seed0', 'lpd__norefiner__seed0',
        'lpd__divpublic__seed0', 'lpd__k3__nodiv__seed0'])
    assert plan['lpd__k5__seed0'].cfg_options == {NUM_PER_CLASS: 5}
    assert plan['lpd__div0.25__seed0'].cfg_options == {DIVERSITY_WEIGHT: 0.25}
    assert plan['lpd__nodiv__seed0'].cfg_options == {DIVERSITY: None}
    assert plan['lpd__norefiner__seed0'].cfg_options == {REFINER: None}
    assert plan['lpd__divpublic__seed0'].cfg_options == {DIVERSITY_VARIANT: 'public'}
    assert plan['pbip__seed0'].config == 'configs/pbip_synth_cpu.py'
    assert plan['pbip__seed0'].spec.pre_stages and not plan['lpd__seed0'].spec.pre_stages


@pytest.mark.parametrize('method', METHODS)
def test_every_registered_method_has_a_default_run_in_the_main_group(method):
    runs = build_plan([method], seeds=[0], preset='cpu')
    assert [r.run_id for r in runs] == [f'{method}__seed0']
    assert runs[0].cfg_options == {}
    assert runs[0].memberships == [{'name': MAIN_GROUP, 'value': runs[0].spec.label}]
    for (dataset, preset), config in runs[0].spec.config_files().items():
        planned = build_plan([method], preset=preset, dataset=dataset)[0]
        assert planned.config == config and planned.dataset == dataset


def test_a_registered_method_is_planned_without_touching_the_runner():
    spec = MethodSpec(name='newmethod', label='New (test)', configs={'cpu': 'configs/x.py'},
                      defaults={'k': 2}, knob_tags={'k': lambda k: f'k{k}'},
                      joins={'num_per_class': (('new, k=4', (('k', 4), )), )})
    register_method(spec)
    try:
        plan = by_id(build_plan(all_runs=True, seeds=[0]))
        assert plan['newmethod__seed0'].config == 'configs/x.py'
        assert plan['newmethod__k4__seed0'].memberships == [
            {'name': 'num_per_class', 'value': 'new, k=4'}]
        assert len(plan) == distinct_configurations()
    finally:
        unregister_method('newmethod')
    assert 'newmethod__seed0' not in by_id(build_plan(all_runs=True, seeds=[0]))


def test_joining_an_unknown_group_is_an_error():
    register_method(MethodSpec(name='lost', label='Lost', configs={'cpu': 'c.py'},
                               joins={'nogroup': (('x', ()), )}))
    try:
        with pytest.raises(ValueError, match="joins ablation group 'nogroup'"):
            build_plan(all_runs=True)
    finally:
        unregister_method('lost')


def test_override_without_a_run_id_tag_is_an_error():
    register_method(MethodSpec(name='untagged', label='U', configs={'cpu': 'c.py'},
                               ablations={'g': (('a', (('knob', 1), )), )}))
    try:
        with pytest.raises(ValueError, match="no run-id tag for override knob=1"):
            build_plan(['g'])
    finally:
        unregister_method('untagged')


def test_default_lpd_run_is_shared_by_every_group_it_belongs_to():
    lpd = by_id(build_plan(all_runs=True, seeds=[0]))['lpd__seed0']
    assert lpd.cfg_options == {}
    assert {(m['name'], m['value']) for m in lpd.memberships} == {
        ('main', 'LPD'), ('num_per_class', 10), ('diversity_weight', 0.5),
        ('mask_refiner', 'with'), ('diversity_form', 'corrected')}
    sources = [s for s in build_plan(['prototype_source'], seeds=[0])]
    assert [s.run_id for s in sources] == ['lpd__k3__seed0', 'lpd__k3__nodiv__seed0', 'pbip__seed0']


def test_every_ablation_point_is_in_the_all_plan():
    plan = build_plan(all_runs=True, seeds=[0, 1, 2])
    assert len(plan) == distinct_configurations() * 3
    assert len({s.run_id for s in plan}) == len(plan)
    for group, points in ablation_groups().items():
        for seed in (0, 1, 2):
            members = [s for s in plan if s.seed == seed
                       and any(m['name'] == group for m in s.memberships)]
            assert sorted(str(m['value']) for s in members for m in s.memberships
                          if m['name'] == group) == sorted(str(p.value) for p in points)


def test_subsets_data_root_and_preset():
    plan = build_plan(['lpd', 'num_per_class'], seeds=[3], preset='paper', data_root='/d')
    assert [s.run_id for s in plan] == ['lpd__seed3', 'lpd__k1__seed3', 'lpd__k3__seed3',
                                        'lpd__k5__seed3']
    assert all(s.config == 'configs/lpd_bcss.py' and s.cfg_options['data_root'] == '/d'
               for s in plan)


def test_check_groups_are_planned_by_name_only():
    checks = check_groups()
    assert 'power' in checks and not set(checks) & set(ablation_groups())
    assert group_default(checks['power']) == 'full' and 'power' in group_titles()
    power = build_plan(['power'], seeds=[0, 1])
    assert [s.run_id for s in power] == [
        'lpd__seed0', 'lpd__quarter__seed0', 'lpd__eighth__seed0', 'lpd__frozenproto__seed0',
        'lpd__seed1', 'lpd__quarter__seed1', 'lpd__eighth__seed1', 'lpd__frozenproto__seed1']
    runs = by_id(power)
    assert runs['lpd__seed0'].cfg_options == {}  # 'full' is the default run
    assert runs['lpd__quarter__seed0'].cfg_options == {SCHEDULE_FRACTION: 0.25}
    assert runs['lpd__eighth__seed0'].cfg_options == {SCHEDULE_FRACTION: 0.125}
    assert runs['lpd__frozenproto__seed0'].cfg_options == {FROZEN_PROTOTYPES: True}
    assert runs['lpd__quarter__seed1'].memberships == [{'name': 'power',
                                                       'value': 'quarter schedule'}]
    everything = by_id(build_plan(all_runs=True, seeds=[0]))
    assert not any(m['name'] in checks for spec in everything.values()
                   for m in spec.memberships)
    shared = by_id(build_plan(['lpd', 'power'], seeds=[0]))['lpd__seed0']
    assert shared.memberships == [{'name': MAIN_GROUP, 'value': 'LPD'},
                                  {'name': 'power', 'value': 'full'}]


def test_check_runs_options_load_on_the_cpu_config():
    from lpd_bench.apis import load_config, scaled_iters
    from lpd_bench.models.prototypes import LearnablePrototypes
    runs = by_id(build_plan(['power'], seeds=[0]))
    full = load_config(runs['lpd__seed0'].config, runs['lpd__seed0'].cfg_options)
    quarter = load_config(runs['lpd__quarter__seed0'].config,
                          runs['lpd__quarter__seed0'].cfg_options)
    assert quarter.train_cfg.max_iters == scaled_iters(full.train_cfg.max_iters, 0.25)
    frozen = load_config(runs['lpd__frozenproto__seed0'].config,
                         runs['lpd__frozenproto__seed0'].cfg_options)
    prototypes = dict(frozen.model.decode_head.prototypes)
    assert prototypes.pop('type') == 'LearnablePrototypes'
    assert not LearnablePrototypes(num_classes=4, **prototypes).prototypes.requires_grad


def test_a_check_group_may_not_take_a_taken_name():
    register_method(MethodSpec(name='clash', label='Clash', configs={'cpu': 'c.py'},
                               checks={'num_per_class': (('x', ()), )}))
    try:
        with pytest.raises(ValueError, match="check group 'num_per_class' of method 'clash'"):
            build_plan(['lpd'])
    finally:
        unregister_method('clash')


@pytest.mark.parametrize('method', [s.name for s in registered_methods() if s.pre_stages])
def test_pre_stage_key_depends_on_seed_data_and_options(method):
    stage = build_plan([method])[0].spec.pre_stages[0]
    a, b = build_plan([method], seeds=[0, 1])
    assert stage.key(a) != stage.key(b)
    assert stage.key(a).startswith(f'{method}_{stage.name}_seed0_')
    assert stage.key(build_plan([method], seeds=[0])[0]) == stage.key(a)
    assert stage.key(build_plan([method], seeds=[0], data_root='/d')[0]) != stage.key(a)
    other = build_plan([method], seeds=[0], extra_options={'train_cfg.max_iters': '2'})[0]
    assert stage.key(other) != stage.key(a)


@pytest.mark.parametrize('names, message', [([], 'pass --all'), (['lpdd'], "unknown method")])
def test_bad_names_are_explained(names, message):
    with pytest.raises(ValueError, match=message):
        build_plan(names)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'gpu'"):
        build_plan(['lpd'], preset='gpu')
