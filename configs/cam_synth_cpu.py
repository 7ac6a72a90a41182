"""CAM baseline, CPU preset on the default synthetic set: ``lpd_synth_cpu.py`` with one class
vector per class and stage (``StageClassVectors``, k=1) and the classification loss only.

RECONSTRUCTED (23:31 UTC) by the runner engineer: a buggy runner test overwrote this uncommitted
file with 'bank' at 23:28; rebuilt from the pattern of cam_bcss.py. Owner: please check/replace.
"""
_base_ = ['./lpd_synth_cpu.py']

model = dict(
    decode_head=dict(
        prototypes=dict(_delete_=True, type='StageClassVectors', num_per_class=1),
        diversity_loss=None,
        refiner_loss=None))
