"""Short CPU schedule for the synthetic preset: a tiny network fine-tuned from the backbone
pretrained on the train split (``models/lpd_mit_tiny_cpu.py``, ``backbone_init``).

Same optimiser and decay as the paper schedule, larger lr, fp32. ``max_iters`` is where CAM's and
LPD's validation mIoU have flattened on the default synthetic set (the learning curves in
reports/calibration_v3.md). One validation, at the end (a log line; the test follows), so no
best-on-val checkpoint is kept: at the plateau the last checkpoint is the one reported.
``lpd-bench run`` leaves that validation out when no best-on-val checkpoint can come of it (the
stage-1 configs; ``tools/train.py --test-after``, lpd_bench/engine/train_then_test.py). The CPU
model switches the refiner/diversity losses on after a third of these iterations. AdamW runs
fused (one kernel over all parameters instead of a Python loop over ~100 small tensors; same
update). ``--cfg-options schedule_fraction=F`` scales all of these together.
"""
_base_ = ['../default_runtime.py']

max_iters = 600

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-3, fused=True))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=max_iters, by_epoch=False)
]
val_interval = max_iters
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=val_interval))
