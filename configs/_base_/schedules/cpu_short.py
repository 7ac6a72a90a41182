"""Short CPU schedule for the synthetic preset: a tiny network trained from scratch.

Same optimiser and decay as the paper schedule, larger lr (no ImageNet initialisation), fp32,
validation and checkpoint every ``val_interval`` iterations. AdamW runs fused (one kernel over all
parameters instead of a Python loop over ~100 small tensors; same update). The CPU model
(``models/lpd_mit_tiny_cpu.py``) switches the refiner/diversity losses on after a third of these
iterations (100); the best-on-val checkpoint is saved from the warm-up plus one validation
interval on (iteration 150), so the validations at 150, 200, 250 and 300 choose it.
"""
_base_ = ['../default_runtime.py']

max_iters = 300

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-3, fused=True))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=max_iters, by_epoch=False)
]
val_interval = 50
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=val_interval))
