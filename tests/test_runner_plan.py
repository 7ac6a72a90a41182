"""The run plan: --all covers every method and ablation, shared runs are deduplicated."""
import pytest

from lpd_bench.runner.plan import (ABLATIONS, DIVERSITY, DIVERSITY_VARIANT, DIVERSITY_WEIGHT,
                                   NUM_PER_CLASS, REFINER, build_plan)


def by_id(plan):
    return {spec.run_id: spec for spec in plan}


def test_all_plan_runs_each_configuration_once_per_seed():
    plan = by_id(build_plan(all_runs=True, seeds=[0]))
    assert sorted(plan) == sorted([
        'cam__seed0', 'pbip__seed0', 'lpd__seed0', 'lpd__k1__seed0', 'lpd__k3__seed0',
        'lpd__k5__seed0', 'lpd__nodiv__seed0', 'lpd__div0.1__seed0', 'lpd__div0.25__seed0',
        'lpd__div1__seed0', 'lpd__norefiner__seed0', 'lpd__divpublic__seed0',
        'lpd__k3__nodiv__seed0'])
    assert plan['lpd__k5__seed0'].cfg_options == {NUM_PER_CLASS: 5}
    assert plan['lpd__div0.25__seed0'].cfg_options == {DIVERSITY_WEIGHT: 0.25}
    assert plan['lpd__nodiv__seed0'].cfg_options == {DIVERSITY: None}
    assert plan['lpd__norefiner__seed0'].cfg_options == {REFINER: None}
    assert plan['lpd__divpublic__seed0'].cfg_options == {DIVERSITY_VARIANT: 'public'}
    assert plan['pbip__seed0'].config == 'configs/pbip_synth_cpu.py'
    assert plan['pbip__seed0'].needs_bank and not plan['lpd__seed0'].needs_bank


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
    assert len(plan) == 13 * 3 and len({s.run_id for s in plan}) == len(plan)
    for group, points in ABLATIONS.items():
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


def test_bank_key_depends_on_seed_data_and_options():
    a, b = build_plan(['pbip'], seeds=[0, 1])
    assert a.bank_key() != b.bank_key() and a.bank_key().startswith('pbip_k3_seed0_')
    assert build_plan(['pbip'], seeds=[0])[0].bank_key() == a.bank_key()
    assert build_plan(['pbip'], seeds=[0], data_root='/d')[0].bank_key() != a.bank_key()
    other = build_plan(['pbip'], seeds=[0], extra_options={'train_cfg.max_iters': '2'})[0]
    assert other.bank_key() != a.bank_key()


@pytest.mark.parametrize('names, message', [([], 'pass --all'), (['lpdd'], "unknown method")])
def test_bad_names_are_explained(names, message):
    with pytest.raises(ValueError, match=message):
        build_plan(names)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'gpu'"):
        build_plan(['lpd'], preset='gpu')
