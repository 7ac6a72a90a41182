"""CAM baseline, paper setting on BCSS-WSSS: LPD's paper config with one class vector per class
and stage (``StageClassVectors``, k=1, no projection MLP) and the classification loss only.

Everything else (backbone, optimiser, schedule, augmentation, inference path) is LPD's.
"""
_base_ = ['./lpd_bcss.py']

model = dict(
    decode_head=dict(
        prototypes=dict(_delete_=True, type='StageClassVectors', num_per_class=1),
        diversity_loss=None,
        refiner_loss=None))
