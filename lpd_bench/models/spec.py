"""LPD's entry in the method registry (:mod:`lpd_bench.methods`): configs, ablations, the power
check, bench cases.

The ablation knobs are keys of the ``PrototypeHead`` config; :data:`HEAD_KNOB_TAGS` gives each
override its run-id fragment and is shared by every method built on the head.
"""
from lpd_bench.bench.case_spec import BACKBONE, INFERENCE, TRAIN_STEP, CaseSpec
from lpd_bench.methods import ExtraStage, MethodSpec, register_method

HEAD = 'model.decode_head'
NUM_PER_CLASS = f'{HEAD}.prototypes.num_per_class'
DIVERSITY = f'{HEAD}.diversity_loss'
DIVERSITY_WEIGHT = f'{DIVERSITY}.loss_weight'
DIVERSITY_VARIANT = f'{DIVERSITY}.variant'
REFINER = f'{HEAD}.refiner_loss'
FROZEN_PROTOTYPES = f'{HEAD}.prototypes.frozen'
#: Config alias (lpd_bench.apis): train for this fraction of the iteration schedule.
SCHEDULE_FRACTION = 'schedule_fraction'

#: Run-id fragment of each knob value (None: that value has no fragment).
HEAD_KNOB_TAGS = {
    NUM_PER_CLASS: lambda k: f'k{k}',
    DIVERSITY_WEIGHT: lambda w: f'div{w:g}',
    DIVERSITY: lambda value: 'nodiv' if value is None else None,
    DIVERSITY_VARIANT: lambda variant: f'div{variant}',
    REFINER: lambda value: 'norefiner' if value is None else None,
}

#: Run-id fragments of the power check's knobs (LPD's only: ``frozen`` is a LearnablePrototypes
#: argument).
CHECK_KNOB_TAGS = {
    SCHEDULE_FRACTION: lambda f: {0.25: 'quarter', 0.125: 'eighth'}.get(f, f'sched{f:g}'),
    FROZEN_PROTOTYPES: lambda frozen: 'frozenproto' if frozen else None,
}



def _measures_specialisation(run) -> bool:
    """Several prototypes per class, and data with the generator's sub-morphology maps."""
    from lpd_bench.analysis.specialisation import has_submorphology
    k = run.cfg_options.get(NUM_PER_CLASS, run.spec.defaults.get(NUM_PER_CLASS, 1))
    return k is not None and int(k) > 1 and has_submorphology(run.data_root,
                                                             layout=run.dataset)


#: Post-stage of the prototype-head methods: does the winning prototype of a class follow the
#: tissue's sub-morphology or mere position (lpd_bench.analysis.specialisation)?
SPECIALISATION_STAGE = ExtraStage(
    name='specialisation', command=('-m', 'lpd_bench.analysis.specialisation'),
    folder='specialisation', suffix='.nmi.json', when=_measures_specialisation,
    in_test='lpd_bench.analysis.specialisation:measure_tested_model')

# Bench cases: the refiner's memory and precision levers.
_REFINER = REFINER + '.'
#: Cut-outs per frozen-encoder call in the chunked variants.
CHUNK_SIZE = 16
FP32 = {_REFINER + 'encoder_autocast': None}
BF16 = {_REFINER + 'encoder_autocast': 'bfloat16'}
PLAIN_REFINER = {_REFINER + 'chunk_size': None, _REFINER + 'checkpoint_encoder': False}
#: The memory levers on whatever device the case runs and for any batch (the paper config keeps
#: them for CPU and batches of more than 64 cut-outs).
ALL_DEVICES = {_REFINER + 'memory_saving_devices': None, _REFINER + 'memory_saving_above': None}
CHECKPOINTED = {_REFINER + 'chunk_size': None, _REFINER + 'checkpoint_encoder': True,
                **ALL_DEVICES}
CHUNKED_CHECKPOINTED = {_REFINER + 'chunk_size': CHUNK_SIZE, _REFINER + 'checkpoint_encoder': True,
                        **ALL_DEVICES}
NO_REFINER = {REFINER: None}
SINGLE_VIEW = {'model.test_cfg.flip': False, 'model.test_cfg.intensities': (1.0, )}
NO_CRF = {'model.test_cfg.crf': False}


def _after(name, description, **kw):
    return CaseSpec(name, TRAIN_STEP, 'lpd', train_iter='warmup', description=description, **kw)


BACKBONE_CASE = CaseSpec('backbone', BACKBONE, 'lpd', description='bare backbone forward + backward')
BEFORE_WARMUP = CaseSpec('lpd_step_before', TRAIN_STEP, 'lpd', train_iter=0,
                         description='LPD training step before the loss warm-up')
CPU_CASES = (
    BACKBONE_CASE,
    BEFORE_WARMUP,
    _after('lpd_step_after', 'LPD training step after the loss warm-up'),
    _after('lpd_step_after_bf16', 'as lpd_step_after, frozen encoder under bfloat16 autocast',
           cfg_options=BF16),
    _after('lpd_step_after_no_refiner', 'as lpd_step_after without the mask refiner (attribution)',
           cfg_options=NO_REFINER),
    CaseSpec('infer_single', INFERENCE, 'lpd', cfg_options=dict(SINGLE_VIEW, **NO_CRF),
             description='LPD inference, single view'),
    CaseSpec('infer_tta', INFERENCE, 'lpd', cfg_options=dict(NO_CRF),
             description='LPD inference, TTA (config test_cfg: flip x 3 intensities = 6 views)'),
)
PAPER_CASES = (
    BACKBONE_CASE,
    BEFORE_WARMUP,
    _after('lpd_step_after', 'LPD training step after the loss warm-up (config as committed)'),
    _after('lpd_step_after_plain', 'frozen encoder weights, fp32, no chunking, no checkpointing',
           cfg_options=dict(PLAIN_REFINER, **FP32)),
    _after('lpd_step_after_straightforward',
           'straightforward refiner: fp32, one encoder call, no checkpointing, encoder weight gradients',
           cfg_options=dict(PLAIN_REFINER, **FP32), encoder_weight_grads=True),
    _after('lpd_step_after_checkpoint', 'frozen, fp32 + encoder activation checkpointing',
           cfg_options=dict(CHECKPOINTED, **FP32)),
    _after('lpd_step_after_chunk_checkpoint',
           f'frozen, fp32 + checkpointing + chunks of {CHUNK_SIZE} cut-outs',
           cfg_options=dict(CHUNKED_CHECKPOINTED, **FP32)),
    _after('lpd_step_after_bf16', 'frozen + encoder under bfloat16 autocast, no chunks/checkpointing',
           cfg_options=dict(PLAIN_REFINER, **BF16)),
    _after('lpd_step_after_chunk_checkpoint_bf16',
           'frozen + checkpointing + chunks + bfloat16 encoder autocast',
           cfg_options=dict(CHUNKED_CHECKPOINTED, **BF16)),
)

# The frozen encoder's speed options (FrozenImageEncoder attention / channels_last / compile) and
# whole-model AMP, each case = the committed config plus the named levers. On request only
# (``lpd-bench bench --preset paper --device cuda --cases NAME ...``): the default paper set, and
# what earlier reports measured, stay as they were. The LPD step after the warm-up over the bare
# backbone with and without them: compare lpd_step_after* with backbone (fp32) and the amp_* steps
# with backbone_amp_* of the same dtype. The compile case compiles in its first calls (and again
# when the number of cut-outs first changes): give it --warmup 3 or more.
_ENCODER = _REFINER + 'encoder.'
SDPA = {_ENCODER + 'attention': 'sdpa'}
SDPA_CL = dict(SDPA, **{_ENCODER + 'channels_last': True})
SDPA_CL_COMPILE = dict(SDPA_CL, **{_ENCODER + 'compile': True})


def _on_request(name, description, kind=TRAIN_STEP, **kw):
    if kind == TRAIN_STEP:
        kw.setdefault('train_iter', 'warmup')
    return CaseSpec(name, kind, 'lpd', description=description, on_request=True, **kw)


ENCODER_SPEED_CASES = (
    _on_request('backbone_amp_fp16', 'bare backbone forward (fp16 autocast) + backward',
                kind=BACKBONE, amp_dtype='float16'),
    _on_request('backbone_amp_bf16', 'bare backbone forward (bf16 autocast) + backward',
                kind=BACKBONE, amp_dtype='bfloat16'),
    _on_request('lpd_step_after_sdpa', 'as lpd_step_after, Swin-T window attention through SDPA',
                cfg_options=SDPA),
    _on_request('lpd_step_after_sdpa_cl', 'as lpd_step_after_sdpa + channels-last patch embedding',
                cfg_options=SDPA_CL),
    _on_request('lpd_step_after_sdpa_cl_compile',
                'as lpd_step_after_sdpa_cl + torch.compile of the frozen Swin-T',
                cfg_options=SDPA_CL_COMPILE),
    _on_request('lpd_step_after_amp_fp16',
                'as lpd_step_after, whole model under fp16 AMP (the paper schedule on CUDA)',
                amp_dtype='float16'),
    _on_request('lpd_step_after_amp_fp16_sdpa_cl',
                'as lpd_step_after_amp_fp16 + SDPA + channels-last',
                amp_dtype='float16', cfg_options=SDPA_CL),
    _on_request('lpd_step_after_amp_bf16', 'as lpd_step_after, whole model under bf16 AMP',
                amp_dtype='bfloat16'),
    _on_request('lpd_step_after_amp_bf16_sdpa_cl',
                'as lpd_step_after_amp_bf16 + SDPA + channels-last',
                amp_dtype='bfloat16', cfg_options=SDPA_CL),
    _on_request('lpd_step_after_amp_bf16_sdpa_cl_compile',
                'as lpd_step_after_amp_bf16_sdpa_cl + torch.compile of the frozen Swin-T',
                amp_dtype='bfloat16', cfg_options=SDPA_CL_COMPILE),
)
PAPER_CASES += ENCODER_SPEED_CASES

#: Ablation groups (the paper family's ablations, docs/methods.md), in report order. lambda=0
#: turns the loss off (diversity_loss=None): the same objective as weight 0 without computing it.
#: Learnable vs clustered prototypes is compared at k=3 (the public PBIP code's k, also a point
#: of the k sweep): LPD k=3; LPD k=3 without the diversity loss (the same losses as the PBIP-style
#: row, so the prototype source is the only difference); the clustered methods join the group.
ABLATIONS = {
    'num_per_class': tuple((k, ((NUM_PER_CLASS, k), )) for k in (1, 3, 5, 10)),
    'diversity_weight': tuple(
        (w, ((DIVERSITY, None), ) if w == 0 else ((DIVERSITY_WEIGHT, w), ))
        for w in (0, 0.1, 0.25, 0.5, 1)),
    'mask_refiner': (('with', ()), ('without', ((REFINER, None), ))),
    'diversity_form': (('corrected', ()), ('public', ((DIVERSITY_VARIANT, 'public'), ))),
    'prototype_source': (
        ('learnable (LPD, k=3)', ((NUM_PER_CLASS, 3), )),
        ('learnable, no diversity (k=3)', ((NUM_PER_CLASS, 3), (DIVERSITY, None))),
    ),
}

#: Check groups (controls of the benchmark, not ablations of LPD: ``lpd-bench run power``, never
#: ``--all``; the report's ``power.md``). ``power``: planted, known-worse variants that the
#: benchmark's paired comparisons must find significantly worse than the default run ('full',
#: shared with the main run): a quarter and an eighth of the training schedule, and the prototypes
#: frozen at their initialisation (docs/protocol.md, "Power check").
CHECKS = {
    'power': (
        ('full', ()),
        ('quarter schedule', ((SCHEDULE_FRACTION, 0.25), )),
        ('eighth schedule', ((SCHEDULE_FRACTION, 0.125), )),
        ('frozen prototypes', ((FROZEN_PROTOTYPES, True), )),
    ),
}

LPD = register_method(MethodSpec(
    name='lpd',
    label='LPD',
    configs={'cpu': 'configs/lpd_synth_cpu.py', 'paper': 'configs/lpd_bcss.py',
             ('luad', 'cpu'): 'configs/lpd_luad_synth_cpu.py',
             ('luad', 'paper'): 'configs/lpd_luad.py'},
    defaults={NUM_PER_CLASS: 10, DIVERSITY_WEIGHT: 0.5, DIVERSITY_VARIANT: 'corrected'},
    ablations=ABLATIONS,
    checks=CHECKS,
    knob_tags={**HEAD_KNOB_TAGS, **CHECK_KNOB_TAGS},
    post_stages=(SPECIALISATION_STAGE, ),
    bench_cases={'cpu': CPU_CASES, 'paper': PAPER_CASES},
    order=100,
    group_titles={'num_per_class': 'prototypes per class k',
                  'diversity_weight': 'diversity weight lambda', 'mask_refiner': 'mask refiner',
                  'diversity_form': 'diversity loss form',
                  'prototype_source': 'prototype source (k=3)',
                  'power': 'power check (planted, known-worse variants)'},
    setting_notes={('num_per_class', 1): '1 (no refiner: selects no prototype at k = 1)'},
))
