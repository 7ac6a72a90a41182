"""Paper schedule: AdamW 5e-5, linear decay to 0, 18,744 iterations (8 epochs at batch 10).

One parameter group, weight decay on every parameter, no lr warm-up; mixed precision on CUDA
(plain fp32 on CPU, where AmpOptimWrapper is not available). Validation and checkpoint once per
epoch (23,422 / 10 = 2,343 iterations). The best-on-val checkpoint is saved from the loss warm-up
(3,000) plus one validation interval on (iteration 5,343: the validations of epochs 3 to 8); the
test split is scored with the last and with the best-on-val checkpoint (the public code: last).
"""
_base_ = ['../default_runtime.py']

max_iters = 18744
iters_per_epoch = 2343

optim_wrapper = dict(
    type='AmpOptimWrapper' if __import__('torch').cuda.is_available() else 'OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=1e-3))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=iters_per_epoch))
