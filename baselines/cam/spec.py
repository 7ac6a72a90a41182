"""CAM's entry in the method registry (:mod:`lpd_bench.methods`)."""
from lpd_bench.bench.case_spec import TRAIN_STEP, CaseSpec
from lpd_bench.methods import MethodSpec, register_method
from lpd_bench.models.spec import HEAD_KNOB_TAGS, NUM_PER_CLASS

CAM = register_method(MethodSpec(
    name='cam',
    label='CAM',
    configs={'cpu': 'configs/cam_synth_cpu.py', 'paper': 'configs/cam_bcss.py',
             ('luad', 'cpu'): 'configs/cam_luad_synth_cpu.py',
             ('luad', 'paper'): 'configs/cam_luad.py'},
    defaults={NUM_PER_CLASS: 1},
    knob_tags=HEAD_KNOB_TAGS,
    bench_cases={'cpu': (
        CaseSpec('cam_step', TRAIN_STEP, 'cam', description='CAM training step'), )},
    order=10,
    readme='baselines/cam/README.md',
))
