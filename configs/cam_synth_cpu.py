"""CAM baseline, CPU preset on the default synthetic set: ``lpd_synth_cpu.py`` with one class
vector per class and stage (``StageClassVectors``, k=1) and the classification loss only.
"""
_base_ = ['./lpd_synth_cpu.py']

model = dict(
    decode_head=dict(
        prototypes=dict(_delete_=True, type='StageClassVectors', num_per_class=1),
        diversity_loss=None,
        refiner_loss=None))
