"""The PBIP-style baseline's entry in the method registry (:mod:`lpd_bench.methods`): LPD's head
and losses on a frozen k-means bank, built by a pre-stage (stage A) before training (stage B)."""
from lpd_bench.bench.case_spec import CUSTOM, TRAIN_STEP, CaseSpec
from lpd_bench.methods import ExtraStage, MethodSpec, register_method
from lpd_bench.models.spec import HEAD_KNOB_TAGS, NUM_PER_CLASS, SPECIALISATION_STAGE

from .bench_cases import KMEANS_POINTS_PER_CLASS
from .prototype_bank import write_random_bank

#: The config key the bank file fills.
BANK_PATH = 'model.decode_head.prototypes.bank_path'
DEFAULT_NUM_PER_CLASS = 3


def _bank_args(run) -> list:
    return ['--num-per-class', run.cfg_options.get(NUM_PER_CLASS, DEFAULT_NUM_PER_CLASS)]


#: Stage A: the bank of one (config + options, seed), shared by the runs that use it.
BANK_STAGE = ExtraStage(
    name='prototype_bank', command=('-m', 'baselines.pbip.build_bank'), folder='banks',
    suffix='.pth', config_key=BANK_PATH, args=_bank_args, stand_in=write_random_bank)

PBIP = register_method(MethodSpec(
    name='pbip',
    label='k-means bank + LPD head (PBIP-style, 2-stage)',
    short_label='k-means bank + LPD head',
    configs={'cpu': 'configs/pbip_synth_cpu.py', 'paper': 'configs/pbip_bcss.py',
             ('luad', 'cpu'): 'configs/pbip_luad_synth_cpu.py',
             ('luad', 'paper'): 'configs/pbip_luad.py'},
    defaults={NUM_PER_CLASS: DEFAULT_NUM_PER_CLASS},
    joins={'prototype_source': (('clustered (PBIP, k=3)', ()), )},
    knob_tags=HEAD_KNOB_TAGS,
    pre_stages=(BANK_STAGE, ),
    post_stages=(SPECIALISATION_STAGE, ),
    bench_cases={'cpu': (
        CaseSpec('pbip_step', TRAIN_STEP, 'pbip', train_iter='warmup',
                 description='PBIP-style stage B training step (random unit bank), refiner on'),
        CaseSpec('bank_encode', CUSTOM, 'pbip', prepare='baselines.pbip.bench_cases:prepare_encode',
                 description='PBIP stage A: frozen-encoder embeddings of a batch'),
        CaseSpec('bank_kmeans', CUSTOM, 'pbip', prepare='baselines.pbip.bench_cases:prepare_kmeans',
                 description=f'PBIP stage A: spherical k-means, {KMEANS_POINTS_PER_CLASS} points '
                             'per class'),
    )},
    order=20,
    readme='baselines/pbip/README.md',
))
