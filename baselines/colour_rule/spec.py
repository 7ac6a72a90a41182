"""The colour rule's entry in the method registry (:mod:`lpd_bench.methods`): a reference that is
fitted by a pre-stage (class centroids of block colour statistics) and tested, never trained."""
from lpd_bench.methods import ExtraStage, MethodSpec, register_method

from .fit import FIT_STAGE_NAME

#: The fit: its output is the checkpoint the runner tests (``checkpoint_stage``).
FIT_STAGE = ExtraStage(name=FIT_STAGE_NAME, command=('-m', 'baselines.colour_rule.fit'),
                       folder='colour_rule_fits', suffix='.pth')

COLOUR_RULE = register_method(MethodSpec(
    name='colour_rule',
    label='Colour-statistics centroid rule (reference, no training)',
    short_label='Colour rule',
    configs={'cpu': 'configs/colour_rule_synth_cpu.py', 'paper': 'configs/colour_rule_bcss.py',
             ('luad', 'cpu'): 'configs/colour_rule_luad_synth_cpu.py',
             ('luad', 'paper'): 'configs/colour_rule_luad.py'},
    pre_stages=(FIT_STAGE, ),
    checkpoint_stage=FIT_STAGE_NAME,
    order=5,
    readme='baselines/colour_rule/README.md',
))
