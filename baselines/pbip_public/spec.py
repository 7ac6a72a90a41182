"""The public-code PBIP baseline's entry in the method registry (:mod:`lpd_bench.methods`): the
PBIP-style baseline's k-means bank (its pre-stage, shared code) trained and tested as the public
PBIP stage-1 code does it."""
from baselines.pbip.spec import BANK_STAGE, DEFAULT_NUM_PER_CLASS
from lpd_bench.bench.case_spec import TRAIN_STEP, CaseSpec
from lpd_bench.methods import MethodSpec, register_method
from lpd_bench.models.spec import HEAD_KNOB_TAGS, NUM_PER_CLASS, SPECIALISATION_STAGE

PBIP_PUBLIC = register_method(MethodSpec(
    name='pbip_public',
    label='PBIP (public stage-1 code, 2-stage)',
    short_label='PBIP (public code)',
    configs={'cpu': 'configs/pbip_public_synth_cpu.py', 'paper': 'configs/pbip_public_bcss.py',
             ('luad', 'cpu'): 'configs/pbip_public_luad_synth_cpu.py',
             ('luad', 'paper'): 'configs/pbip_public_luad.py'},
    defaults={NUM_PER_CLASS: DEFAULT_NUM_PER_CLASS},
    knob_tags=HEAD_KNOB_TAGS,
    pre_stages=(BANK_STAGE, ),
    post_stages=(SPECIALISATION_STAGE, ),
    bench_cases={'cpu': (
        CaseSpec('pbip_public_step', TRAIN_STEP, 'pbip_public', train_iter='warmup',
                 description='public-code PBIP stage B training step (random unit bank), '
                             'refiner on (from iteration 0)'),
    )},
    order=25,
    readme='baselines/pbip_public/README.md',
))
