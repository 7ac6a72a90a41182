"""The second stage's data on the default synthetic set, CPU preset: ``pseudo_masks_bcss.py`` on
``../datasets/synthetic_cpu.py`` (``data_root=None``, inputs resized to 112 px, small batches, no
workers). The train masks are resized with their images (nearest); val/test masks stay at full
size and predictions come back at the original size, as for stage 1.
"""
_base_ = ['../datasets/synthetic_cpu.py']

pseudo_mask_dir = None

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    _base_.resize,
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate90', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='PseudoMaskDataset', data_root=_base_.data_root, mask_dir=pseudo_mask_dir,
    pipeline=train_pipeline))

stage2_protocol = dict(stage=2, gating='none', crf=False, tta=None)
val_evaluator = dict(type='WSSSMetric', default_protocol=stage2_protocol)
test_evaluator = val_evaluator
