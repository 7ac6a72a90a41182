"""The second stage's data on BCSS-WSSS: train on the train images with a pseudo-mask folder
(``PseudoMaskDataset``), validate and test on the real val/test masks (``BCSSWSSSDataset``), with
no labels at test.

``pseudo_mask_dir``: the folder ``python -m lpd_bench.stage2.pseudo_masks`` (or ``lpd-bench
pseudo-masks RUN_DIR``) wrote; set it with ``--cfg-options pseudo_mask_dir=PATH`` (copied into the
train dataset, as ``data_root`` into every dataset). Augmentation: stage 1's (flips, 90-degree
rotation), applied to image and mask alike. The metric scores the network's argmax as the
gating ``none`` (``WSSSMetric.default_protocol``: an mmseg model records no protocol itself),
under every background protocol.
"""
_base_ = ['../datasets/bcss_wsss.py']

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
