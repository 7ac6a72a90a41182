"""The second stage's data on the default synthetic set, CPU preset: ``pseudo_masks_bcss.py`` on
``../datasets/synthetic_cpu.py`` (``data_root=None``, inputs resized to 112 px, small batches, no
workers). The train masks are resized with their images (nearest); val/test masks stay at full
size and predictions come back at the original size, as for stage 1. The stage-2 lines are
``pseudo_masks_bcss.py``'s, written against the dataset base (an MMEngine base file cannot be
laid over two dataset bases).
"""
_base_ = ['../datasets/synthetic_cpu.py']

pseudo_mask_dir = None

# Stage 1's train pipeline (its augmentation) with the mask loaded and packed for mmseg.
train_pipeline = [_base_.train_pipeline[0], dict(type='LoadAnnotations'),
                  *_base_.train_pipeline[1:-1], dict(type='PackSegInputs')]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='PseudoMaskDataset', data_root=_base_.data_root, mask_dir=pseudo_mask_dir,
    pipeline=train_pipeline))

# What the metric JSON records as the protocol of the second stage's predictions.
stage2_protocol = dict(stage=2, gating='none', crf=False, tta=None)
val_evaluator = test_evaluator = dict(type='WSSSMetric', default_protocol=stage2_protocol)
