"""Runtime shared by every config: hooks, logging, environment, distributed wrapper, seed.

The schedules (``schedules/*.py``) inherit this file and set the hook intervals; top-level
configs name a model, a dataset and a schedule.
"""
default_scope = 'mmseg'

env_cfg = dict(
    cudnn_benchmark=True,  # CUDA only; all patches have one size
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # Decided when the config is parsed. Old-style MMEngine configs may hold no import statement
    # (one would switch MMEngine to its lazy-import config format), hence ``__import__``.
    dist_cfg=dict(backend='nccl' if __import__('torch').cuda.is_available() else 'gloo'),
)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # interval: set by the schedule; best checkpoint = best val mIoU (WSSSMetric's paper protocol),
    # saved only from the loss warm-up plus one validation interval on. max_keep_ckpts counts the
    # periodic iter_*.pth only (the newest is kept for --resume); best_mIoU_iter_*.pth is apart.
    checkpoint=dict(
        type='DelayedBestCheckpointHook', by_epoch=False, interval=-1, max_keep_ckpts=1,
        save_best='mIoU', rule='greater', save_best_after='warmup+interval'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Wall time, iterations, peak memory and parameter count -> <work_dir>/cost_*.json; validation
# during training without the test-time CRF (best-on-val uses the no-CRF mIoU).
custom_hooks = [dict(type='CostRecorderHook'), dict(type='NoCRFInValidationHook')]

# Distributed runs (torchrun ... --launcher pytorch): device_ids=None lets DDP use the module's own
# device, which CPU modules require (on CUDA the runner has already put the model on the local
# rank's GPU); parameters used only by the refiner/diversity losses get no gradient before the
# loss warm-up ends, hence find_unused_parameters.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
    find_unused_parameters=True)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42)
